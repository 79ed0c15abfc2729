r"""Request parameter types shared by the routers, and what makes the OpenAPI say what the server does (issue 13).

Every integer a client sends is bounded in its schema (an id above PostgreSQL's 32-bit ``Integer`` was a 500
``integer out of range``, one above 64 bits a 500 ``OverflowError`` on SQLite), every text refuses control
characters (PostgreSQL refuses NUL: a 500 ``DataError``), every date or date-time is a real ISO 8601 string
(``0`` was 1970-01-01), and the bounds that depend on the deployment (the service area) are written into the
OpenAPI of each app.

>>> from pydantic import TypeAdapter, ValidationError
>>> def first_error(annotation, value):
...     try:
...         TypeAdapter(annotation).validate_python(value)
...     except ValidationError as exc:
...         return exc.errors()[0]["msg"]
>>> first_error(Id, 2**31)
'Input should be less than or equal to 2147483647'
>>> first_error(Line, "a\x00b")
'Value error, must not contain control characters (U+0000 at position 1)'
>>> first_error(IsoDate, 0)
'Value error, must be an ISO 8601 date string YYYY-MM-DD'
>>> first_error(IsoDatetime, "0.5")
'Value error, must be an ISO 8601 date-time string such as 2026-12-07T10:31:00+08:00'
>>> TypeAdapter(PinCrs).validate_python("epsg:4326")
'wgs84'
>>> first_error(PinCrs, "utm")[:50]
"Unsupported coordinate system 'utm'; use one of wg"
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler, PlainValidator, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError
from shapely.errors import ShapelyError
from shapely.geometry import shape

from app.platform.forms import declare_multipart
from app.settings import Settings
from design_rules.profiles import profile_ids
from gis.crs import CRS_NAMES, CoordinateSystem, CrsUnsupportedError, crs_refusal, parse_crs

# --- integers ---------------------------------------------------------------------------------------------------

#: The largest 64-bit integer (SQLite's INTEGER, PostgreSQL's BIGINT and the SQL ``OFFSET``).
MAX_INT64 = 2**63 - 1
#: The largest id or version: the tables' ``Integer`` columns are 32-bit on PostgreSQL (2^31 already answered
#: 500 ``integer out of range`` there, 2^63 500 ``OverflowError`` on SQLite).
MAX_ID = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A database id or a version number (path, query or body): 1 … 2^31 − 1. Compose with ``Path``/``Query`` for
the description, e.g. ``Annotated[Id, Path(description="Application id.")]``."""

Offset = Annotated[int, Field(ge=0, le=MAX_INT64)]
"""Rows to skip in a page: 0 … 2^63 − 1."""



def json_integer(value: object) -> object:
    """What JSON Schema calls an integer: an ``int`` or an integral number such as ``3.0`` (as ``3``); never a
    ``bool`` or a string (pydantic's lax mode took ``true`` as 1 and ``"30"`` as 30, its strict mode refused 3.0).

    >>> json_integer(3.0), json_integer(7)
    (3, 7)
    >>> json_integer(True)
    Traceback (most recent call last):
    ...
    ValueError: must be a JSON integer, not bool
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a JSON integer, not {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a JSON integer")
        return int(value)
    return value


#: Put before the type: ``Annotated[Literal[1, 3], JSON_INTEGER]``, ``Annotated[Id, JSON_INTEGER]`` (bodies only;
#: path and query values are strings that FastAPI parses).
JSON_INTEGER = BeforeValidator(json_integer)

# --- text -------------------------------------------------------------------------------------------------------

#: Single-line text: no C0 or C1 control character (U+0000–U+001F, U+007F–U+009F), tab and newline included.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: Free text (notes, reasons): as :data:`LINE_PATTERN` but tab, line feed and carriage return are allowed.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_LINE_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_TEXT_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class _DeclaredPattern:
    """Adds ``pattern`` to a field's JSON schema while the check itself runs in Python (a clearer message, and
    lone surrogates from JSON ``\\ud800`` escapes, which no JSON Schema pattern can name, are refused too)."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


def _refuse(bad: re.Pattern[str], value: str) -> str:
    found = bad.search(value)
    if found is not None:
        raise ValueError(f"must not contain control characters (U+{ord(found.group()):04X} at position "
                         f"{found.start()})")
    return value


def _check_line(value: str) -> str:
    return _refuse(_LINE_BAD, value)


def _check_text(value: str) -> str:
    return _refuse(_TEXT_BAD, value)


Line = Annotated[str, AfterValidator(_check_line), _DeclaredPattern(LINE_PATTERN)]
"""Single-line text (names, numbers, codes, addresses): no control character. Add ``max_length`` with
``Field``/``Query`` as usual, e.g. ``Annotated[Line, Field(max_length=200)]``."""

Text = Annotated[str, AfterValidator(_check_text), _DeclaredPattern(TEXT_PATTERN)]
"""Free text (notes, reasons): no control character except tab, line feed and carriage return."""

class _ProfileIds:
    """Declares the installed policy profiles as the field's ``enum``, read when the OpenAPI is generated (the
    profiles are data files); the check itself is ``design_rules.profiles.get_profile`` (422 ``PROFILE_UNKNOWN``
    naming the known ids)."""

    __slots__ = ()

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["enum"] = list(profile_ids())
        return schema


ProfileId = Annotated[Line, Field(max_length=64), _ProfileIds()]
"""A policy profile id (query or body): one of the installed profiles, declared as an ``enum``; ``ProfileId |
None`` keeps ``null`` allowed beside it."""

# --- the coordinate system of a pin -----------------------------------------------------------------------------


def _check_pin_crs(value: object) -> str:
    if isinstance(value, str | CoordinateSystem):
        try:
            return parse_crs(value).value
        except CrsUnsupportedError:
            pass
    # PydanticCustomError without context: the message is final (a value holding braces is not a template)
    raise PydanticCustomError("crs_unsupported", crs_refusal(value))


PinCrs = Annotated[str, PlainValidator(_check_pin_crs), WithJsonSchema({"type": "string", "enum": list(CRS_NAMES)})]
"""The system a pin's ``lon``/``lat`` are in (designs, sources, applications, survey adjustments; issue 20 item 5):
one of :data:`gis.crs.CRS_NAMES` (``wgs84``, ``gcj02``, ``bd09``, ``cgcs2000``, ``EPSG:4326``, ``EPSG:4490``),
declared as an ``enum``, matched case-insensitively and normalised to the system's name (``epsg:4326`` →
``wgs84``). Anything else is 422 ``REQUEST_INVALID`` with error type ``crs_unsupported`` and a message listing
the accepted values; a projected CRS too (a pin is lon/lat, see :func:`gis.crs.crs_refusal`)."""

#: The description of every pin's ``crs``.
PIN_CRS_NOTE = ("System the pin was captured in: `wgs84` (GPS; also `EPSG:4326`), `gcj02` (Amap/Tencent/WeChat), "
                "`bd09` (Baidu) or `cgcs2000` (also `EPSG:4490`, taken as WGS-84); case-insensitive, answered as "
                "the name (`EPSG:4326` → `wgs84`). A projected CRS (x/y, e.g. `EPSG:4545`) is refused: a pin is "
                "lon/lat. Anything else is 422 `REQUEST_INVALID` listing these values.")

# --- dates ------------------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?")


def _check_iso_date(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date string YYYY-MM-DD")
    return value


def _check_iso_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not (isinstance(value, str) and _ISO_DATETIME.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time string such as 2026-12-07T10:31:00+08:00")
    return value


IsoDate = Annotated[date, BeforeValidator(_check_iso_date)]
"""A calendar date sent as ``YYYY-MM-DD`` only (pydantic alone also takes ``0`` as 1970-01-01)."""

IsoDatetime = Annotated[datetime, BeforeValidator(_check_iso_datetime)]
"""A date-time sent as ``YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]`` only (pydantic alone also takes ``0.5`` as
a Unix time); without an offset it is naive, which the routers take as UTC."""

# --- GeoJSON geometries ----------------------------------------------------------------------------------------

# Two numbers: stretches are drawn on a map (a height would be ignored, and a geometry mixing 2 and 3 numbers per
# position made GEOS fail)
_POSITION = {"type": "array", "minItems": 2, "maxItems": 2, "prefixItems": [
    {"type": "number", "minimum": -180, "maximum": 180}, {"type": "number", "minimum": -90, "maximum": 90}],
    "items": False}
#: Least positions of the coordinates at each nesting level of a geometry type (GeoJSON, RFC 7946 §3.1), the
#: innermost level first: a LineString has 2 or more positions, a Polygon's rings 4 or more.
_LEVELS: dict[str, tuple[int, ...]] = {"Point": (), "MultiPoint": (1,), "LineString": (2,),
                                       "MultiLineString": (2, 1), "Polygon": (4, 1), "MultiPolygon": (4, 1, 1)}


def _coordinates_schema(levels: tuple[int, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = _POSITION
    for least in levels:
        schema = {"type": "array", "minItems": least, "items": schema}
    return schema


#: The JSON schema of one no-overhead stretch: a GeoJSON geometry in WGS-84 (checked by ``_check_geometry``).
GEOMETRY_SCHEMA: dict[str, Any] = {"oneOf": [
    {"type": "object", "required": ["type", "coordinates"],
     "properties": {"type": {"const": kind}, "coordinates": _coordinates_schema(levels)}}
    for kind, levels in _LEVELS.items()]}


def _check_coordinates(value: Any, levels: tuple[int, ...]) -> None:
    if not levels:
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            raise ValueError("a position is 2 numbers, longitude and latitude")
        if not (-180 <= value[0] <= 180 and -90 <= value[1] <= 90):
            raise ValueError("a position lies outside ±180° longitude, ±90° latitude")
        return
    if not (isinstance(value, list) and len(value) >= levels[-1]):
        raise ValueError(f"coordinates need at least {levels[-1]} items at this level")
    for item in value:
        _check_coordinates(item, levels[:-1])


def check_geometry(position: int, item: dict[str, Any]) -> None:
    """Refuse (``ValueError``) item ``position`` of a list of stretches unless it is a valid GeoJSON geometry as
    :data:`GEOMETRY_SCHEMA` declares it, in WGS-84; GEOS's own exceptions (a one-point LineString) included.

    >>> check_geometry(0, {"type": "LineString", "coordinates": [[106.49, 29.5], [106.5, 29.5]]})
    >>> check_geometry(0, {"type": "LineString", "coordinates": [[106.49, 29.5]]})
    Traceback (most recent call last):
    ...
    ValueError: item 0: coordinates need at least 2 items at this level
    """
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in _LEVELS or "coordinates" not in item:
        raise ValueError(f"item {position} is not a GeoJSON geometry of type {', '.join(_LEVELS)}")
    try:
        _check_coordinates(item["coordinates"], _LEVELS[kind])
    except ValueError as exc:
        raise ValueError(f"item {position}: {exc}") from None
    try:
        geometry = shape(item)
        valid = not geometry.is_empty and geometry.is_valid
    except (KeyError, TypeError, ValueError, AttributeError, ShapelyError) as exc:
        raise ValueError(f"item {position} is not a GeoJSON geometry ({exc})") from None
    if not valid:  # e.g. a ring that crosses itself: valid JSON, invalid geometry (no JSON Schema says it)
        raise ValueError(f"item {position} is an invalid geometry (it crosses itself or has no extent)")


Stretch = Annotated[dict[str, Any], WithJsonSchema(GEOMETRY_SCHEMA)]
"""One no-overhead stretch (survey adjustments, design requests): declared as :data:`GEOMETRY_SCHEMA`; check the
list with :func:`check_geometry` in a ``field_validator``."""



# --- the deployment's service area ------------------------------------------------------------------------------

#: JSON-schema marker of a pin coordinate (``json_schema_extra`` of its ``Query``/``Field``): the world's bounds,
#: which :func:`install_contract` narrows to the deployment's service area (``SANLING_SERVICE_AREA_WGS84``).
#: Declared, not validated by FastAPI: ``gis.crs.pin_to_local`` answers 422 ``COORDINATE_INVALID`` outside the
#: world and ``OUT_OF_SERVICE_AREA`` outside the service area.
SERVICE_AREA_KEY = "x-service-area"
SERVICE_AREA_LON = {SERVICE_AREA_KEY: "lon", "minimum": -180.0, "maximum": 180.0}
SERVICE_AREA_LAT = {SERVICE_AREA_KEY: "lat", "minimum": -90.0, "maximum": 90.0}
SERVICE_AREA_NOTE = ("Within the deployment's service area (`SANLING_SERVICE_AREA_WGS84`, the bounds shown); a "
                     "GCJ-02 or BD-09 pin is checked after conversion to WGS-84, so within ~1 km of the edge "
                     "it may be refused with `OUT_OF_SERVICE_AREA`.")


def _schemas(node: Any) -> Iterator[MutableMapping[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def declare_service_area(openapi: dict[str, Any], area_wgs84: tuple[float, float, float, float]) -> None:
    """Write the service area's bounds into every schema marked with :data:`SERVICE_AREA_KEY` (in place).

    >>> doc = {"paths": {"/p": {"get": {"parameters": [{"schema": {"type": "number", "x-service-area": "lat"}}]}}}}
    >>> declare_service_area(doc, (105.0, 28.0, 110.0, 32.0))
    >>> doc["paths"]["/p"]["get"]["parameters"][0]["schema"]
    {'type': 'number', 'x-service-area': 'lat', 'minimum': 28.0, 'maximum': 32.0}
    """
    min_lon, min_lat, max_lon, max_lat = area_wgs84
    bounds = {"lon": (min_lon, max_lon), "lat": (min_lat, max_lat)}
    for schema in _schemas(openapi):
        axis = schema.get(SERVICE_AREA_KEY)
        if axis in bounds:
            schema["minimum"], schema["maximum"] = bounds[axis]


# --- what every operation can answer ----------------------------------------------------------------------------

#: Every operation that reads a body answers 400 when the body cannot be parsed at all (Starlette and FastAPI:
#: JSON that is not UTF-8, a broken multipart or form body), before any validation.
BODY_UNREADABLE = {"description": "The body cannot be parsed: JSON that is not UTF-8, a malformed multipart or "
                                  "form body (`HTTP_400`)."}


#: Every operation that needs credentials answers 401 without them (app.identity.auth), whatever else it declares.
UNAUTHENTICATED = {"description": "No or invalid credentials (`UNAUTHENTICATED`, `CREDENTIALS_INVALID`, "
                                  "`TOKEN_EXPIRED`)."}


def _operations(openapi: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path_item in openapi.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                yield operation


def declare_unreadable_body(openapi: dict[str, Any]) -> None:
    """Add the 400 of :data:`BODY_UNREADABLE` to every operation with a request body (in place)."""
    for operation in _operations(openapi):
        if "requestBody" in operation:
            operation["responses"].setdefault("400", dict(BODY_UNREADABLE))


def declare_unauthenticated(openapi: dict[str, Any]) -> None:
    """Add the 401 of :data:`UNAUTHENTICATED` to every operation that declares a security requirement (in place)."""
    for operation in _operations(openapi):
        if operation.get("security"):
            operation["responses"].setdefault("401", dict(UNAUTHENTICATED))


# --- 405 answers name every method of the path ------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


def path_methods(openapi: dict[str, Any]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path pattern, methods) of every path of an OpenAPI document; GET brings HEAD (Starlette serves both).

    >>> [(p.pattern, sorted(m)) for p, m in path_methods({"paths": {"/a/{id}.mvt": {"get": {}, "post": {}}}})]
    [('/a/[^/]+\\\\.mvt', ['GET', 'HEAD', 'POST'])]
    """
    table = []
    for path, item in openapi.get("paths", {}).items():
        parts = re.split(r"(\{[^}/]+\})", path)
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        methods = {method.upper() for method in item} & _HTTP_METHODS
        if "GET" in methods:
            methods.add("HEAD")
        table.append((re.compile(pattern), frozenset(methods)))
    return table


class AllowAllMethods:
    """ASGI middleware: a 405's ``Allow`` lists every method the OpenAPI declares on the path, not only the first
    matching route's.

    Starlette answers a method no route serves with the ``Allow`` of the first route whose path matched, so
    ``OPTIONS /api/v1/users`` said ``allow: POST`` although ``GET`` is served there too (issue 13 item 13).
    Paths outside the OpenAPI (``/static``, ``/docs``) keep Starlette's answer.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._table: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    def allowed(self, path: str) -> list[str]:
        """The methods declared on ``path`` (empty when no declared path matches it)."""
        if self._table is None:
            self._table = path_methods(self.fastapi_app.openapi())
        methods: set[str] = set()
        for pattern, declared in self._table:
            if pattern.fullmatch(path):
                methods |= declared
        return sorted(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.allowed(scope["path"])
                if methods:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    message = {**message, "headers": [*headers, (b"allow", ", ".join(methods).encode("latin-1"))]}
            await send(message)

        await self.app(scope, receive, send_with_allow)


def install_contract(app: FastAPI, settings: Settings) -> None:
    """Make ``app``'s OpenAPI say what it does: the service area's bounds, the 400 of unreadable bodies, the 401
    of every operation that needs credentials, how multipart parts are sent (JSON parts, optional files:
    ``app.platform.forms.declare_multipart``), and 405 answers whose ``Allow`` names every method of the path.
    Call once in ``create_app``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            declare_service_area(document, settings.service_area_wgs84)
            declare_unreadable_body(document)
            declare_unauthenticated(document)
            declare_multipart(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(AllowAllMethods, fastapi_app=app)
