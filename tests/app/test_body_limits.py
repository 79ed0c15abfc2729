"""Request bodies are refused before they are read (issue 13 item 6): credentials, length and type come first.

The slow tests fire 1 GiB bodies from a generator over a real ``sanling serve`` socket (never materialised in
memory) and watch the server's disk (its TMPDIR and data dir, deleted-but-open spool files included) and RSS;
a body that would be spooled stops the test as soon as the growth passes the bound, so a regression fails in
about a second instead of filling the disk.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, update

from app.identity.auth import Role
from app.main import create_app
from app.platform import migrate
from app.platform.body_limits import BodyLimitMiddleware, BodyRule
from app.platform.db import create_db_engine
from app.platform.models import User
from app.serving import reuseport_supported
from tests.app.auth_helpers import (
    TEST_JWT_SECRET,
    api_key_headers,
    auth_headers,
    make_api_key,
    make_user,
    override_session,
    settings_for_tests,
)

SANLING = str(Path(sys.executable).parent / "sanling")
GIB = 1 << 30
MIB = 1 << 20
#: The bound of the issue: the server's disk and RSS may not grow by more than this while refusing a body.
GROWTH_LIMIT = 20 * MIB
CHUNK = b"\0" * (256 * 1024)


# --- a real server, and bodies from generators ---------------------------------------------------------------


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    watched: tuple[Path, ...]
    gis_admin_token: str
    customer_token: str
    pm_api_key: str
    database_url: str

    def pids(self) -> list[int]:
        """The supervisor and every process below it (the worker)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                tasks = Path(f"/proc/{pid}/task").iterdir()
                for task in tasks:
                    todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
        return found

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def disk_bytes(self) -> int:
        """Bytes in the watched folders, counting files the server holds open after deleting them (spools)."""
        sizes: dict[tuple[int, int], int] = {}
        for folder in self.watched:
            for root, _dirs, files in os.walk(folder):
                for name in files:
                    try:
                        st = os.stat(os.path.join(root, name))
                    except OSError:
                        continue
                    sizes[(st.st_dev, st.st_ino)] = st.st_size
        for pid in self.pids():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd)
                    if not any(target.startswith(str(folder)) for folder in self.watched):
                        continue
                    st = os.stat(fd)
                except OSError:
                    continue
                sizes[(st.st_dev, st.st_ino)] = st.st_size
        return sum(sizes.values())


@dataclass
class Outcome:
    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    sent_bytes: int
    disk_growth: int
    rss_growth: int


def _multipart(boundary: str, fields: dict[str, str], file_field: str, filename: str, size: int,
               content_type: str = "application/octet-stream") -> tuple[int, Iterator[bytes]]:
    """A multipart body of ``size`` bytes in all, ending in a file of zeros, as (length, chunk generator)."""
    head = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                    for name, value in fields.items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
             f"Content-Type: {content_type}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    filler = size - len(head) - len(tail)

    def chunks() -> Iterator[bytes]:
        yield head
        left = filler
        while left > 0:
            piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            left -= len(piece)
            yield piece
        yield tail

    return size, chunks()


def _zeros(size: int, prefix: bytes = b"") -> Iterator[bytes]:
    yield prefix
    left = size - len(prefix)
    while left > 0:
        piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
        left -= len(piece)
        yield piece


def _chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Transfer-Encoding: chunked framing of ``chunks``."""
    for chunk in chunks:
        if chunk:
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes] | None:
    if b"\r\n\r\n" not in raw:
        return None
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if len(body) < int(headers.get("content-length", "0")):
        return None
    return int(lines[0].split()[1]), headers, body


def _fire(server: Server, path: str, headers: dict[str, str], body: Iterator[bytes], *,
          timeout_s: float = 60.0) -> Outcome:
    """Send a request whose body comes from ``body`` while reading the answer and watching the server.

    Stops sending as soon as an answer is complete, the server closes, or its disk or RSS grew past
    :data:`GROWTH_LIMIT` (so a server that spools the body fails the test quickly).
    """
    disk0, rss0 = server.disk_bytes(), server.rss_bytes()
    disk_peak, rss_peak = disk0, rss0
    sock = socket.create_connection((server.host, server.port))
    head = f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    stop = threading.Event()
    sent = [0]

    def sender() -> None:
        try:
            sock.sendall(head.encode("latin-1"))
            for chunk in body:
                if stop.is_set():
                    return
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            return

    started = time.monotonic()
    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    raw = b""
    parsed = None
    sock.settimeout(0.05)
    try:
        while time.monotonic() - started < timeout_s:
            disk_peak, rss_peak = max(disk_peak, server.disk_bytes()), max(rss_peak, server.rss_bytes())
            if disk_peak - disk0 > GROWTH_LIMIT or rss_peak - rss0 > GROWTH_LIMIT:
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            raw += data
            if (parsed := _parse(raw)) is not None:
                break
    finally:
        seconds = time.monotonic() - started
        stop.set()
        sock.close()
        thread.join(timeout=10)
    disk_peak, rss_peak = max(disk_peak, server.disk_bytes()), max(rss_peak, server.rss_bytes())
    status, answer_headers, answer = parsed if parsed is not None else (None, {}, b"")
    return Outcome(status, answer_headers, answer, seconds, sent[0], disk_peak - disk0, rss_peak - rss0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(base: str, username: str, password: str) -> str:
    data = f"username={username}&password={password.replace(' ', '+')}".encode()
    request = urllib.request.Request(f"{base}/api/v1/auth/token", data=data, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not reuseport_supported():
        pytest.skip("sanling serve needs SO_REUSEPORT")
    root = tmp_path_factory.mktemp("body-limits")
    data_dir, tmp_dir = root / "data", root / "tmp"
    data_dir.mkdir()
    tmp_dir.mkdir()
    url = f"sqlite:///{data_dir / 'serve.sqlite'}"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    gis_admin = make_user(engine, Role.GIS_ADMIN)
    customer = make_user(engine, Role.CUSTOMER)
    pm_api_key = make_api_key(engine, make_user(engine, Role.PROJECT_MANAGER))
    engine.dispose()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(data_dir), "TMPDIR": str(tmp_dir),
                "SANLING_LOG_LEVEL": "WARNING", "SANLING_JOBS_ENABLED": "false", "SANLING_JWT_SECRET": TEST_JWT_SECRET,
                "SANLING_PASSWORD_HASH_PROFILE": "fast", "SANLING_UPLOAD_MAX_BYTES": str(MIB)})
    process = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", "1"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert process.poll() is None, "the server exited"
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                    break
            except OSError:
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.2)
        yield Server("127.0.0.1", port, process, (data_dir, tmp_dir), _token(base, gis_admin.username,
                     gis_admin.password), _token(base, customer.username, customer.password), pm_api_key, url)
    finally:
        process.terminate()
        process.wait(timeout=60)


def _report(what: str, outcome: Outcome) -> str:
    return (f"{what}: status {outcome.status} after {outcome.seconds:.2f} s, {outcome.sent_bytes / MIB:.1f} MiB sent, "
            f"disk +{outcome.disk_growth / MIB:.2f} MiB, RSS +{outcome.rss_growth / MIB:.2f} MiB")


def _assert_refused(outcome: Outcome, status: int, code: str, what: str) -> None:
    print(_report(what, outcome))
    assert outcome.disk_growth < GROWTH_LIMIT, _report(what, outcome)
    assert outcome.rss_growth < GROWTH_LIMIT, _report(what, outcome)
    assert outcome.status == status, _report(what, outcome)
    assert outcome.seconds < 5, _report(what, outcome)
    body = json.loads(outcome.body)
    assert body["code"] == code and set(body) == {"code", "message", "details"}, body


def _warm_up(server: Server) -> None:
    # the first request of a kind loads code; measure the refusals, not imports
    for _ in range(2):
        length, body = _multipart("warm", {"application": "{}"}, "identity_document", "id.pdf", 4096)
        _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=warm",
                                               "Content-Length": str(length)}, body)


def test_an_unauthenticated_1_gib_upload_is_refused_before_it_is_read(server: Server) -> None:
    _warm_up(server)
    length, body = _multipart("b0undary", {"application": "{}"}, "identity_document", "id.pdf", GIB)
    outcome = _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                      "Content-Length": str(length)}, body)
    _assert_refused(outcome, 401, "UNAUTHENTICATED", "unauthenticated 1 GiB multipart")
    assert outcome.headers["www-authenticate"].startswith("Bearer")


def test_an_unauthenticated_chunked_upload_is_refused_too(server: Server) -> None:
    _warm_up(server)
    _length, body = _multipart("b0undary", {"application": "{}"}, "identity_document", "id.pdf", GIB)
    outcome = _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                      "Transfer-Encoding": "chunked"}, _chunked(body))
    _assert_refused(outcome, 401, "UNAUTHENTICATED", "unauthenticated 1 GiB chunked multipart")


def test_a_forged_token_does_not_open_the_door(server: Server) -> None:
    _warm_up(server)
    length, body = _multipart("b0undary", {"application": "{}"}, "identity_document", "id.pdf", GIB)
    outcome = _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                      "Content-Length": str(length),
                                                      "Authorization": "Bearer not.a.token"}, body)
    _assert_refused(outcome, 401, "CREDENTIALS_INVALID", "1 GiB multipart with a forged token")


def test_a_made_up_api_key_of_the_right_shape_does_not_open_the_door(server: Server) -> None:
    """Issue 13 item 6: an API key was only shape-checked before the body, so ``sl_<8 hex>_<anything>`` got a
    1 GiB import spooled; now its row is read (and its secret verified) before the first byte."""
    _warm_up(server)
    length, body = _multipart("b0undary", {"layer": "transformers"}, "file", "transformers.gpkg", GIB)
    outcome = _fire(server, "/api/v1/imports", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                "Content-Length": str(length),
                                                "X-API-Key": "sl_0badc0de_not-a-secret-anyone-issued"}, body)
    _assert_refused(outcome, 401, "CREDENTIALS_INVALID", "1 GiB import with a made-up API key")


def test_a_real_api_key_of_a_role_that_may_not_import_is_refused_before_it_is_read(server: Server) -> None:
    """An API key's role needs its row: a project manager's terminal key gets 403 before any of a 1 GiB import."""
    _warm_up(server)
    length, body = _multipart("b0undary", {"layer": "transformers"}, "file", "transformers.gpkg", GIB)
    outcome = _fire(server, "/api/v1/imports", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                "Content-Length": str(length), "X-API-Key": server.pm_api_key}, body)
    _assert_refused(outcome, 403, "FORBIDDEN", "1 GiB import with a project manager's API key")


def test_a_deactivated_users_token_is_refused_before_the_body(server: Server) -> None:
    """A token whose signature still verifies but whose user was deactivated: 401 before the body is read."""
    _warm_up(server)
    engine = create_db_engine(server.database_url)
    try:
        user = make_user(engine, Role.CUSTOMER)
        token = _token(f"http://{server.host}:{server.port}", user.username, user.password)
        with engine.begin() as conn:
            conn.execute(update(User).where(User.id == user.id).values(is_active=False))
    finally:
        engine.dispose()
    length, body = _multipart("b0undary", {"application": "{}"}, "identity_document", "id.pdf", GIB)
    outcome = _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                      "Content-Length": str(length),
                                                      "Authorization": f"Bearer {token}"}, body)
    _assert_refused(outcome, 401, "CREDENTIALS_INVALID", "1 GiB multipart with a deactivated user's token")


def test_an_unauthenticated_100_mb_json_body_is_refused_before_it_is_read(server: Server) -> None:
    _warm_up(server)
    size = 100 * 1000 * 1000
    outcome = _fire(server, "/api/v1/designs", {"Content-Type": "application/json", "Content-Length": str(size)},
                    _zeros(size, b'{"pad": "'))
    _assert_refused(outcome, 401, "UNAUTHENTICATED", "unauthenticated 100 MB JSON")


def test_an_oversized_json_body_is_refused_by_its_length_when_signed_in(server: Server) -> None:
    _warm_up(server)
    size = 100 * 1000 * 1000
    outcome = _fire(server, "/api/v1/designs", {"Content-Type": "application/json", "Content-Length": str(size),
                                                "Authorization": f"Bearer {server.customer_token}"},
                    _zeros(size, b'{"pad": "'))
    _assert_refused(outcome, 413, "BODY_TOO_LARGE", "signed-in 100 MB JSON")


def test_an_import_of_the_wrong_type_is_refused_before_it_is_spooled(server: Server) -> None:
    _warm_up(server)
    length, body = _multipart("b0undary", {"layer": "transformers"}, "file", "transformers.exe", GIB)
    outcome = _fire(server, "/api/v1/imports", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                "Content-Length": str(length),
                                                "Authorization": f"Bearer {server.gis_admin_token}"}, body)
    _assert_refused(outcome, 415, "UPLOAD_TYPE_UNSUPPORTED", "gis_admin 1 GiB import of a .exe")


def test_an_import_by_a_role_that_may_not_import_is_refused_before_it_is_read(server: Server) -> None:
    """The import route's cap is 1 GiB: a token whose (signed) role may not import gets 403 before any of it."""
    _warm_up(server)
    length, body = _multipart("b0undary", {"layer": "transformers"}, "file", "transformers.gpkg", GIB)
    outcome = _fire(server, "/api/v1/imports", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                "Content-Length": str(length),
                                                "Authorization": f"Bearer {server.customer_token}"}, body)
    _assert_refused(outcome, 403, "FORBIDDEN", "customer 1 GiB import")


def test_a_signed_in_chunked_upload_stops_at_the_cap(server: Server) -> None:
    """No Content-Length: the bytes are counted while the route reads them; 413 once past the cap."""
    _warm_up(server)
    _length, body = _multipart("b0undary", {"application": "{}"}, "identity_document", "id.pdf", GIB)
    outcome = _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                      "Transfer-Encoding": "chunked",
                                                      "Authorization": f"Bearer {server.customer_token}"},
                    _chunked(body))
    _assert_refused(outcome, 413, "BODY_TOO_LARGE", "signed-in 1 GiB chunked multipart")


def test_an_upload_that_announces_too_much_is_refused_by_its_length(server: Server) -> None:
    _warm_up(server)
    length, body = _multipart("b0undary", {"application": "{}"}, "identity_document", "id.pdf", GIB)
    outcome = _fire(server, "/api/v1/applications", {"Content-Type": "multipart/form-data; boundary=b0undary",
                                                      "Content-Length": str(length),
                                                      "Authorization": f"Bearer {server.customer_token}"}, body)
    _assert_refused(outcome, 413, "BODY_TOO_LARGE", "signed-in 1 GiB multipart")
    assert json.loads(outcome.body)["details"]["max_bytes"] < 4 * MIB  # 1 MiB per file × 2 + the form fields


# --- the rules, in process -------------------------------------------------------------------------------------


@pytest.fixture
def client(db_conn: Connection, demo_db_url: str, tmp_path: Path) -> TestClient:
    app = create_app(settings_for_tests(demo_db_url, data_dir=tmp_path, upload_max_bytes=64 * 1024))
    override_session(app, db_conn)
    return TestClient(app)


def _code(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and set(body) == {"code", "message", "details"}, body
    return dict(body)


def test_bodies_need_credentials_but_bodiless_requests_and_sign_in_do_not(client: TestClient,
                                                                        db_conn: Connection) -> None:
    _code(client.post("/api/v1/designs", json={"lon": 106.5}), 401, "UNAUTHENTICATED")
    _code(client.post("/api/v1/designs", json={}, headers={"Authorization": "Bearer x.y.z"}), 401,
          "CREDENTIALS_INVALID")
    _code(client.post("/api/v1/designs", json={}, headers={"X-API-Key": "sl_nothex!_secret"}), 401,
          "CREDENTIALS_INVALID")
    # without a body the route's own dependency answers, as before
    _code(client.post("/api/v1/applications/1/cancel"), 401, "UNAUTHENTICATED")
    # a method the path does not have, or a path that does not exist, is routing's to answer (405, 404): no
    # route reads the body
    response = client.put("/api/v1/designs", json={"lon": 106.5})
    assert response.status_code == 405 and "POST" in response.headers["Allow"], response.text
    assert client.post("/api/v1/no-such-route", json={}).status_code == 404
    assert client.patch("/api/v1/auth/me", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 405
    # a body sent with GET is never read: no credentials asked for it (a public page stays public)
    assert client.request("GET", "/api/v1/features/conformance", content=b"x", headers={
        "Content-Type": "text/plain"}).status_code == 200
    _code(client.request("GET", "/api/v1/features/conformance", content=b"x" * (2 * MIB)), 413, "BODY_TOO_LARGE")
    # sign-in is public, a well-shaped API key passes the cheap check and the route checks the rest
    user = make_user(db_conn, Role.PROJECT_MANAGER)
    headers = auth_headers(client, user)
    key = make_api_key(db_conn, user)
    assert client.post("/api/v1/designs", json={}, headers=api_key_headers(key)).status_code == 422
    assert client.post("/api/v1/designs", json={}, headers=headers).status_code == 422
    # the import route takes GIS administrators' (and admins') tokens only: the others are refused before the body
    body = _code(client.post("/api/v1/imports", files={"file": ("a.gpkg", b"SQLite format 3\0")}, headers=headers),
                 403, "FORBIDDEN")
    assert body["details"]["required_roles"] == ["gis_admin"]


def test_length_and_type_are_checked_before_the_body_is_read(client: TestClient, db_conn: Connection) -> None:
    headers = auth_headers(client, make_user(db_conn, Role.CUSTOMER))
    big = b'{"x": "' + b"a" * (2 * MIB) + b'"}'
    body = _code(client.post("/api/v1/designs", content=big, headers={**headers, "Content-Type": "application/json"}),
                 413, "BODY_TOO_LARGE")
    assert body["details"]["max_bytes"] == MIB
    _code(client.post("/api/v1/designs", content=b"a=1", headers={**headers, "Content-Type": "text/plain"}), 415,
          "CONTENT_TYPE_UNSUPPORTED")
    _code(client.post("/api/v1/applications", content=b'{"a": 1}', headers={**headers,
                                                                           "Content-Type": "application/json"}),
          415, "CONTENT_TYPE_UNSUPPORTED")
    # chunked: counted while read
    chunks = (b"a" * 65536 for _ in range(40))
    _code(client.post("/api/v1/designs", content=chunks, headers={**headers, "Content-Type": "application/json"}),
          413, "BODY_TOO_LARGE")
    # an upload over files × SANLING_UPLOAD_MAX_BYTES + the form fields' allowance
    files = {"identity_document": ("a.pdf", b"%PDF-" + b"0" * (60 * 1024), "application/pdf")}
    body = _code(client.post("/api/v1/applications", data={"application": "{}" + " " * (MIB + 200_000)},
                             files=files, headers=headers), 413, "BODY_TOO_LARGE")
    assert body["details"]["max_bytes"] == 2 * 64 * 1024 + MIB
    # sign-in: public, but small
    _code(client.post("/api/v1/auth/token", content=b"username=a&password=" + b"b" * (64 * 1024),
                      headers={"Content-Type": "application/x-www-form-urlencoded"}), 413, "BODY_TOO_LARGE")


async def _call(middleware: BodyLimitMiddleware, headers: list[tuple[bytes, bytes]],
                chunks: list[bytes]) -> tuple[int, dict[str, object], bool]:
    """Run one request through the middleware in front of an app that reads the whole body."""
    reached = False
    answer: dict[str, object] = {}
    pending = list(chunks)

    async def receive() -> dict[str, object]:
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] = answer.get("body", b"") + message.get("body", b"")  # type: ignore[operator]

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        nonlocal reached
        reached = True
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware.app = app
    scope = {"type": "http", "method": "POST", "path": "/api/v1/designs", "headers": headers}
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    return int(answer["status"]), json.loads(answer["body"]), reached  # type: ignore[arg-type]


def test_a_length_that_cannot_be_read_answers_411() -> None:
    import anyio

    rule = BodyRule(name="json", max_bytes=100, content_types=("application/json",))
    middleware = BodyLimitMiddleware(None, routes=(), default=rule, check_credentials=lambda _a, _k, _r: None)  # type: ignore[arg-type]
    auth = (b"authorization", b"Bearer t")
    for length in (b"abc", b"-1", b"1, 2"):
        status, body, reached = anyio.run(_call, middleware, [auth, (b"content-length", length)], [b"{}"])
        assert (status, body["code"], reached) == (411, "LENGTH_REQUIRED", False)
    status, body, reached = anyio.run(_call, middleware, [auth, (b"content-length", b"2"),
                                                          (b"content-type", b"application/json")], [b"{}"])
    assert (status, reached) == (200, True)
    status, body, reached = anyio.run(_call, middleware, [auth, (b"transfer-encoding", b"chunked"),
                                                          (b"content-type", b"application/json")],
                                      [b"{" + b" " * 60, b" " * 60 + b"}"])
    assert (status, body["code"], reached) == (413, "BODY_TOO_LARGE", True)


def test_a_body_request_is_authenticated_once(client: TestClient, db_conn: Connection,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The full check before the body reads the caller's row; the route's dependency answers with the same
    caller instead of reading it again (one read per request on the design hot path, not two)."""
    from app.identity import auth

    user = make_user(db_conn, Role.PLANNER)
    headers = auth_headers(client, user)
    calls: list[str | None] = []
    real = auth.authenticate
    monkeypatch.setattr(auth, "authenticate", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    response = client.post("/api/v1/designs", json={"lon": 106.4883433, "lat": 29.499325, "kw": 10,
                                                    "category": "small_enterprise"}, headers=headers)
    assert response.status_code == 201, response.text
    assert len(calls) == 1
    # a bodiless request has no check before the body: its dependency authenticates it
    calls.clear()
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert len(calls) == 1
