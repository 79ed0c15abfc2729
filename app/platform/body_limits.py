"""Request bodies are checked before anything reads them (issue 13 item 6; docs/auth.md "Request bodies").

FastAPI parses a request's body (spooling multipart files to ``TMPDIR``, holding JSON in memory) before it runs
the route's dependencies, authentication included. :class:`BodyLimitMiddleware` is a pure ASGI middleware in front
of the routers that, for every request carrying a body and before the first byte of it is read:

1. asks for credentials on every route that is not public (``check_credentials``: presence and a cheap validity
   check, no database; then ``verify_credentials``: the key or user row, as the route's dependency reads it),
   else 401; a route class limited to some roles (imports) refuses a token or key of another role, 403;
2. refuses a ``Content-Length`` that cannot be read (411) or that is above the route class's cap (413);
3. refuses a ``Content-Type`` the route class does not take (415);
4. counts the bytes as the route reads them, so a body without ``Content-Length`` (chunked) stops at the cap (413),
   and for the import route looks at the file part's name as it streams past (415 before the file is spooled).

Answers are ``{code, message, details}`` with ``Connection: close`` when the body was not read, so the server
stops receiving it. The route classes are data (:class:`BodyRule`, :class:`BodyRoute`); :func:`body_routes` makes
Sanling's, and ``create_app`` installs the middleware with :func:`install_body_limits`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import orjson
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.uploads import UploadTooLargeError, UploadTypeError
from app.settings import Settings
from gis.errors import SanlingError

__all__ = [
    "BodyLimitMiddleware",
    "BodyRoute",
    "BodyRule",
    "BodyTooLargeError",
    "ContentTypeUnsupportedError",
    "LengthRequiredError",
    "body_routes",
    "install_body_limits",
]

#: The methods whose routes take a body.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_TYPES = ("application/json", "")  # "" = no Content-Type: FastAPI reads such a body as JSON
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The sign-in form: a username (≤ 64) and a password (≤ 256 characters), with room for OAuth2's optional fields.
LOGIN_MAX_BYTES = 16 * 1024


class BodyTooLargeError(UploadTooLargeError):
    """The body is larger than its route class allows (HTTP 413)."""

    code = "BODY_TOO_LARGE"
    default_message = "The request body is too large."


class LengthRequiredError(SanlingError):
    """``Content-Length`` is not one non-negative integer (HTTP 411)."""

    code = "LENGTH_REQUIRED"
    default_message = "Send one valid Content-Length, or a chunked body."


class ContentTypeUnsupportedError(UploadTypeError):
    """The route does not take a body of this ``Content-Type`` (HTTP 415)."""

    code = "CONTENT_TYPE_UNSUPPORTED"
    default_message = "This route does not take a body of this Content-Type."


#: The statuses of the answers the middleware gives itself (the 401s come from ``check_credentials``'s errors).
_STATUSES: tuple[tuple[type[SanlingError], int], ...] = (
    (BodyTooLargeError, 413), (LengthRequiredError, 411), (UploadTypeError, 415))


@dataclass(frozen=True)
class BodyRule:
    """What a class of routes accepts as a body.

    Attributes
    ----------
    name : str
        The class, reported in errors (``json``, ``upload``, ``import``, ``login``…).
    max_bytes : int
        The cap on the body, counted on the wire (the ``Content-Length``, or the bytes read when chunked).
    content_types : tuple of str
        Accepted media types (``""``: no Content-Type); ``application/json`` also accepts ``application/*+json``.
        Empty: any.
    public : bool
        No credentials needed (sign-in, the public endpoints).
    roles : tuple of str
        The roles the route lets through (admins always pass), checked on an access token's signed ``role``
        claim before the body is read (403); empty: any signed-in caller. An API key's role needs the database,
        so a key passes on its shape and the route checks its role.
    file_field, file_suffixes
        For a multipart route: the file part whose name must end in one of ``file_suffixes`` (checked as the part's
        headers stream past, before its content is read).
    """

    name: str
    max_bytes: int
    content_types: tuple[str, ...] = JSON_TYPES
    public: bool = False
    roles: tuple[str, ...] = ()
    file_field: str | None = None
    file_suffixes: tuple[str, ...] = ()

    def accepts(self, media_type: str) -> bool:
        """Whether a body of ``media_type`` (lower case, no parameters) may be sent.

        >>> BodyRule("json", 10).accepts("application/geo+json"), BodyRule("json", 10).accepts("text/plain")
        (True, False)
        """
        if not self.content_types or media_type in self.content_types:
            return True
        return "application/json" in self.content_types and re.fullmatch(r"application/[\w.-]+\+json",
                                                                          media_type) is not None


@dataclass(frozen=True)
class BodyRoute:
    """A route whose bodies follow ``rule`` instead of the default; ``path`` is the route's template.

    >>> BodyRoute("POST", "/api/v1/applications/{application_id}/documents", BodyRule("upload", 1)).matches(
    ...     "POST", "/api/v1/applications/12/documents")
    True
    """

    method: str
    path: str
    rule: BodyRule
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{[^}/]+\}", self.path)
        object.__setattr__(self, "_pattern", re.compile("[^/]+".join(re.escape(part) for part in parts)))

    def matches(self, method: str, path: str) -> bool:
        """Whether a request of ``method`` on ``path`` is this route."""
        return method == self.method and self._pattern.fullmatch(path) is not None


def body_routes(settings: Settings, *, import_max_bytes: int, import_suffixes: Sequence[str],
                import_roles: Sequence[str] = (), max_photos: int) -> tuple[BodyRoute, ...]:
    """Sanling's route classes with a body other than JSON (every other route with a body is JSON, ``json_rule``).

    Parameters
    ----------
    settings : Settings
        ``upload_max_bytes`` (per file) and ``json_body_max_bytes`` (the form fields around the files).
    import_max_bytes, import_suffixes
        The import route's limits (``app.api.imports.get_import_limits``).
    import_roles
        The roles that may import (its cap is large, so the others are refused before it is read).
    max_photos : int
        Photos per stage report (``app.api.terminal.MAX_PHOTOS``).
    """
    def upload(files: int) -> BodyRule:
        # a form without files (a stage report without photos) may come url-encoded
        return BodyRule("upload", files * settings.upload_max_bytes + settings.json_body_max_bytes, FORM_TYPES)

    return (
        BodyRoute("POST", "/api/v1/auth/token", BodyRule("login", LOGIN_MAX_BYTES, FORM_TYPES, public=True)),
        BodyRoute("POST", "/api/v1/applications", upload(2)),  # identity document and property proof
        BodyRoute("POST", "/api/v1/applications/{application_id}/documents", upload(1)),
        BodyRoute("POST", "/api/v1/terminal/jobs/{job_id}/steps/{step_code}", upload(max_photos)),
        BodyRoute("POST", "/api/v1/imports", BodyRule("import", import_max_bytes + settings.json_body_max_bytes,
                                                      FORM_TYPES, roles=tuple(import_roles), file_field="file",
                                                      file_suffixes=tuple(import_suffixes))),
    )


class _Refused(Exception):
    """Raised into the route from ``receive`` once its body broke the rule; the middleware answers instead."""


class _FilePartCheck:
    """Watches a multipart body stream by and refuses the ``field`` file whose name has another suffix.

    Stops looking (and parsing) once that part's headers were seen; a body it cannot parse is left to the route.
    """

    def __init__(self, boundary: bytes, rule: BodyRule) -> None:
        self.rule = rule
        self.error: SanlingError | None = None
        self.done = False
        self._field, self._value = bytearray(), bytearray()
        self._headers: dict[bytes, bytes] = {}
        callbacks: Any = {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name", b"").decode("latin-1") != self.rule.file_field or b"filename" not in options:
            return
        self.done = True
        filename = options[b"filename"].decode("utf-8", "replace")
        # the suffix of the name the route stores the file under (app/api/imports.py keeps word characters)
        cleaned = re.sub(r"[^\w.\-]+", "_", PurePosixPath(filename.replace("\\", "/")).name).strip("._")
        if PurePosixPath(cleaned).suffix.lower() not in self.rule.file_suffixes:
            self.error = UploadTypeError(f"Upload a file ending in {', '.join(self.rule.file_suffixes)}.",
                                         field=self.rule.file_field, filename=filename,
                                         allowed=list(self.rule.file_suffixes))

    def feed(self, data: bytes) -> SanlingError | None:
        """Parse the next piece of the body; return the error once the file part is refused."""
        if self.done or not data:
            return None
        try:
            self._parser.write(data)
        except Exception:  # malformed multipart: the route's parser answers it
            self.done = True
        return self.error


CredentialCheck = Callable[[str | None, str | None, tuple[str, ...]], None]
"""``check(authorization, x_api_key, roles)``: return when the credential looks valid (and, when ``roles`` is not
empty, carries one of them), else raise its ``SanlingError`` (401, or 403 for another role)."""
CredentialVerify = Callable[[Scope, str | None, str | None, tuple[str, ...]], Awaitable[None]]
"""``await verify(scope, authorization, x_api_key, roles)``: the full check (database rows) after the cheap one."""


class BodyLimitMiddleware:
    """Pure ASGI middleware: credentials, length and type of a body before it is read; a counted cap while it is.

    Parameters
    ----------
    app : ASGIApp
        The app behind.
    routes : sequence of BodyRoute
        Routes with their own rule (first match wins).
    default : BodyRule
        Every other ``POST``, ``PUT`` or ``PATCH`` route under ``guarded_prefix``.
    check_credentials : CredentialCheck
        The cheap check of the ``Authorization`` and ``X-API-Key`` headers on non-public routes.
    verify_credentials : CredentialVerify, optional
        The full check that follows it, still before the body (an API key's or user's row: a made-up key of
        the right shape, a revoked key, a deactivated user's token, a key of a role the route refuses).
    status_for : callable, optional
        The HTTP status of an error ``check_credentials`` raises (default 401).
    guarded_prefix : str
        Paths below it are the API; a body sent anywhere else (``/healthz``, ``/static``…), or with a method whose
        routes take none, needs no credentials but is capped at the default size.
    public_prefixes : tuple of str
        API paths that need no credentials (``/api/v1/public/``).
    router : object with ``routes``, optional
        The app's router. A body sent to a method or path no route has is left to routing (405 with ``Allow``,
        404; no route reads it), only capped; without a router every path under ``guarded_prefix`` is checked.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[BodyRoute], default: BodyRule,
                 check_credentials: CredentialCheck, verify_credentials: CredentialVerify | None = None,
                 status_for: Callable[[SanlingError], int] | None = None,
                 guarded_prefix: str = "/api/", public_prefixes: tuple[str, ...] = ("/api/v1/public/",),
                 router: Any = None) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.default = default
        self.outside = BodyRule("other", default.max_bytes, (), public=True)
        self.public_default = BodyRule(default.name, default.max_bytes, default.content_types, public=True)
        self.check_credentials = check_credentials
        self.verify_credentials = verify_credentials
        self.status_for = status_for or (lambda _exc: 401)
        self.guarded_prefix = guarded_prefix
        self.public_prefixes = public_prefixes
        self.router = router

    def rule_for(self, method: str, path: str, scope: Scope | None = None) -> BodyRule:
        """The rule of a request's body.

        Only ``POST``, ``PUT`` and ``PATCH`` routes take bodies; a body sent with another method, or to a method or
        path no route has (``scope`` given and a router known), is never read by a route, so it needs no
        credentials and may have any type, and is only capped (and counted).
        """
        if method not in BODY_METHODS or (scope is not None and not self._routed(scope)):
            return self.outside
        for route in self.routes:
            if route.matches(method, path):
                return route.rule
        if not path.startswith(self.guarded_prefix):
            return self.outside
        if path.startswith(self.public_prefixes):
            return self.public_default
        return self.default

    def _routed(self, scope: Scope) -> bool:
        """Whether a route of the app takes this method on this path (no router: assume so)."""
        if self.router is None:
            return True
        return any(route.matches(scope)[0] is Match.FULL for route in self.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one HTTP request's body; requests without a body pass untouched."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths: list[bytes] = []
        chunked = False
        content_type = authorization = api_key = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                lengths.extend(part.strip() for part in value.split(b","))
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
        if not chunked and (not lengths or lengths == [b"0"]):
            await self.app(scope, receive, send)  # no body
            return
        rule = self.rule_for(scope["method"], scope["path"], scope)
        length: int | None = None
        if not chunked:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                await self._answer(send, LengthRequiredError(content_length=b", ".join(lengths).decode("latin-1")))
                return
            length = int(lengths[0])
        if not rule.public:
            try:
                self.check_credentials(authorization, api_key, rule.roles)
                if self.verify_credentials is not None:
                    await self.verify_credentials(scope, authorization, api_key, rule.roles)
            except SanlingError as exc:
                await self._answer(send, exc, self.status_for(exc))
                return
        if length is not None and length > rule.max_bytes:
            await self._answer(send, BodyTooLargeError(
                f"The body is larger than the {rule.max_bytes} bytes this route takes.",
                max_bytes=rule.max_bytes, content_length=length, route_class=rule.name))
            return
        media_type, options = parse_options_header(content_type)
        media = media_type.decode("latin-1").lower()
        if not rule.accepts(media) or (media.startswith("multipart/") and not options.get(b"boundary")):
            await self._answer(send, ContentTypeUnsupportedError(
                f"This route takes {' or '.join(t for t in rule.content_types if t) or 'any'} bodies.",
                content_type=(content_type or b"").decode("latin-1")[:200],
                accepted=[t for t in rule.content_types if t], route_class=rule.name))
            return
        await self._pass_counted(scope, receive, send, rule, options.get(b"boundary"))

    async def _pass_counted(self, scope: Scope, receive: Receive, send: Send, rule: BodyRule,
                            boundary: bytes | None) -> None:
        """Run the route with a ``receive`` that counts and inspects the body; answer for it if it breaks the rule."""
        received = 0
        refused: SanlingError | None = None
        started = answered = False
        inspector = _FilePartCheck(boundary, rule) if rule.file_field and boundary else None

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused is not None:
                raise _Refused
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > rule.max_bytes:
                    refused = BodyTooLargeError(f"The body is larger than the {rule.max_bytes} bytes this route takes.",
                                                max_bytes=rule.max_bytes, route_class=rule.name)
                elif inspector is not None:
                    refused = inspector.feed(chunk)
                if refused is not None:
                    raise _Refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, answered
            if answered:
                return  # the route's own answer to the aborted body is dropped
            if message["type"] == "http.response.start":
                if refused is not None:
                    answered = True
                    await self._answer(send, refused)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if refused is None or started:
                raise
            if not answered:
                answered = True
                await self._answer(send, refused)

    async def _answer(self, send: Send, exc: SanlingError, status: int | None = None) -> None:
        if status is None:
            status = next((code for error_class, code in _STATUSES if isinstance(exc, error_class)), 400)
        body = orjson.dumps(exc.to_dict())
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # the rest of the body is not read: stop receiving it
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in (getattr(exc, "response_headers", None) or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install_body_limits(app: Any, settings: Settings, *, check_credentials: CredentialCheck,
                        verify_credentials: CredentialVerify | None = None,
                        status_for: Callable[[SanlingError], int] | None = None, import_max_bytes: int,
                        import_suffixes: Sequence[str], import_roles: Sequence[str] = (), max_photos: int) -> None:
    """Add :class:`BodyLimitMiddleware` with Sanling's route classes (:func:`body_routes`) to ``app``.

    Call it before ``install_request_middleware``, so that the request-id middleware stays outside and the
    refusals carry ``X-Request-ID`` and are logged like every answer.
    """
    app.add_middleware(BodyLimitMiddleware,
                       routes=body_routes(settings, import_max_bytes=import_max_bytes, import_suffixes=import_suffixes,
                                          import_roles=import_roles, max_photos=max_photos),
                       default=BodyRule("json", settings.json_body_max_bytes),
                       check_credentials=check_credentials, verify_credentials=verify_credentials,
                       status_for=status_for, router=app.router)
