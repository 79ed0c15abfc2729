"""`sanling serve --workers N`: one SO_REUSEPORT socket per worker, supervised (issue 2 item 7, issue 4 item 10)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app.platform import migrate
from app.serving import reuseport_supported

SANLING = str(Path(sys.executable).parent / "sanling")
pytestmark = pytest.mark.skipif(not reuseport_supported(), reason="SO_REUSEPORT is Linux/BSD only")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _workers(pid: int) -> list[int]:
    """The supervisor's worker processes (multiprocessing adds a resource tracker, which is not one)."""
    return [c for c in _children(pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def _health(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.loads(response.read()))


def _answers_until_all_seen(url: str, pids: set[int], timeout_s: float = 30.0) -> list[dict[str, object]]:
    """``/healthz`` answers, each on a new connection, until every worker in ``pids`` has answered (or time is up).

    A worker listens only once it has loaded the network, so right after start the other one answers alone.
    """
    answers: list[dict[str, object]] = []
    deadline = time.time() + timeout_s
    while {a["worker_pid"] for a in answers} != pids and time.time() < deadline:
        answers.append(_health(url))
    return answers


def _wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not come up")


def test_workers_share_the_port_are_restarted_and_stop_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    migrate.upgrade(url)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(tmp_path), "SANLING_LOG_LEVEL": "WARNING",
                "SANLING_JOBS_ENABLED": "false"})
    server = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        _wait_up(health, server)
        deadline = time.time() + 30
        while len(_workers(server.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = _workers(server.pid)
        assert len(workers) == 2
        # new connections are spread over both sockets once both workers listen; each worker loaded the
        # network before it took its first connection (SANLING_PRELOAD_NETWORK)
        answers = _answers_until_all_seen(health, set(workers))
        assert {a["worker_pid"] for a in answers} == set(workers)
        assert all(a["worker_network_generation"] is not None for a in answers)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            now = _workers(server.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        assert len(_workers(server.pid)) == 2 and workers[0] not in _workers(server.pid)
        _wait_up(health, server)
        answers = _answers_until_all_seen(health, set(_workers(server.pid)))  # the new one once it has loaded
        assert {a["worker_pid"] for a in answers} == set(_workers(server.pid))
        assert all(a["worker_network_generation"] is not None for a in answers)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, server.stderr.read().decode() if server.stderr else code


def test_a_taken_port_is_refused_at_once(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
        env.update({"SANLING_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "SANLING_DATA_DIR": str(tmp_path)})
        result = subprocess.run([SANLING, "serve", "--port", str(port), "--workers", "2"],
                                env=env, capture_output=True, timeout=60)
    assert result.returncode == 2 and b"PORT_IN_USE" in result.stderr


def test_a_request_waiting_for_a_lock_leaves_the_event_loop_answering(tmp_path: Path) -> None:
    """Issue 11 item 4: request work runs off the event loop (no monkeypatched AnyIO), so while one request
    waits for SQLite's write lock the worker still accepts connections and answers what needs no thread, and
    (issue 13) its health check, which needs no request slot."""
    import sqlite3
    import threading
    import urllib.error

    db_path = tmp_path / "serve.sqlite"
    migrate.upgrade(f"sqlite:///{db_path}")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATABASE_URL": f"sqlite:///{db_path}", "SANLING_DATA_DIR": str(tmp_path),
                "SANLING_LOG_LEVEL": "WARNING", "SANLING_JOBS_ENABLED": "false"})
    server = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(base + "/healthz", server)
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the login below must wait for it
        outcome: dict[str, object] = {}

        def login() -> None:
            started = time.monotonic()
            request = urllib.request.Request(base + "/api/v1/auth/token", method="POST",
                                             data=b"username=nobody&password=wrong-password",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            try:
                urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as exc:
                outcome["status"] = exc.code
            outcome["waited_s"] = time.monotonic() - started

        waiting = threading.Thread(target=login)
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive(), "the login did not wait for the lock"
        started = time.monotonic()
        try:
            urllib.request.urlopen(base + "/no-such-page", timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        assert time.monotonic() - started < 1.0  # the loop answered while the other request waits
        # and /healthz holds no request slot: it answers while the one slot waits for the lock (it used to queue
        # behind it, and with the lock released only after this call, this would time out)
        with urllib.request.urlopen(base + "/healthz", timeout=5) as health:
            assert health.status == 200 and json.loads(health.read())["status"] == "ok"
        time.sleep(1.0)
        holder.execute("ROLLBACK")
        holder.close()
        waiting.join(timeout=30)
        assert outcome["status"] == 401 and float(outcome["waited_s"]) >= 1.5  # type: ignore[arg-type]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_a_crash_loop_backs_off_and_the_other_worker_keeps_serving(tmp_path: Path) -> None:
    """Issue 13 item 5: killing a worker and then its replacement 3 s later took the whole service down
    ("exited at start; stopping"). Now the slot backs off and comes back; the other worker answers meanwhile."""
    import threading

    url = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    migrate.upgrade(url)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATABASE_URL": url, "SANLING_DATA_DIR": str(tmp_path), "SANLING_LOG_LEVEL": "WARNING",
                "SANLING_JOBS_ENABLED": "false"})
    server = subprocess.Popen([SANLING, "serve", "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    health = f"http://127.0.0.1:{port}/healthz"
    polls: list[tuple[float, bool]] = []
    polling = threading.Event()

    def poll() -> None:  # one new connection every 0.1 s for as long as the test runs
        while not polling.is_set():
            try:
                _health(health)
                polls.append((time.monotonic(), True))
            except OSError:
                polls.append((time.monotonic(), False))
            time.sleep(0.1)

    def new_worker(old: set[int]) -> int:
        deadline = time.time() + 30
        while time.time() < deadline:
            assert server.poll() is None, "the supervisor exited"
            fresh = set(_workers(server.pid)) - old
            if fresh:
                return fresh.pop()
            time.sleep(0.05)
        raise AssertionError("no replacement worker")

    poller = threading.Thread(target=poll)
    try:
        _wait_up(health, server)
        deadline = time.time() + 30
        while len(_workers(server.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        first = _workers(server.pid)
        assert {a["worker_pid"] for a in _answers_until_all_seen(health, set(first))} == set(first)
        poller.start()
        victim, survivor = first
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replacement = new_worker(set(first))
        time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))
        os.kill(replacement, signal.SIGKILL)  # the replacement, 3 s after the first kill
        second_kill = time.monotonic()
        third = new_worker(set(first) | {replacement})  # after a longer backoff
        deadline = time.time() + 60
        while {a["worker_pid"] for a in _answers_until_all_seen(health, {survivor, third}, 5)} != {survivor, third}:
            assert time.time() < deadline, "the restarted worker did not come back"
        time.sleep(1.0)
        assert server.poll() is None, "the supervisor exited"
        assert sorted(_workers(server.pid)) == sorted([survivor, third])
    finally:
        polling.set()
        if poller.is_alive():
            poller.join(timeout=10)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    stderr = server.stderr.read().decode() if server.stderr else ""
    assert code == 0, stderr
    # the service answered all along: at most the request in flight on each killed worker is lost
    assert sum(not ok for _, ok in polls) <= 2, polls
    answered = [t for t, ok in polls if ok]
    assert answered and answered[0] < killed_at + 1.0 and answered[-1] > second_kill + 1.0
    assert max(b - a for a, b in itertools.pairwise(answered)) < 3.0
    # the supervisor logged the backoff: 1 s after the first death, 2 s after the replacement's (in a row)
    backoffs = [json.loads(line) for line in stderr.splitlines()
                if line.startswith("{") and '"sanling.serve"' in line and "backoff_s" in line]
    assert [b["backoff_s"] for b in backoffs] == [1.0, 2.0], stderr
    assert [b["deaths_in_a_row"] for b in backoffs] == [1, 2]


def test_restart_backoff_doubles_is_capped_and_resets_after_a_healthy_run() -> None:
    from app.serving import RestartBackoff

    backoff = RestartBackoff(base_s=1.0, cap_s=30.0, healthy_s=60.0)
    assert [backoff.after_exit(served_s=2.0) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.deaths_in_a_row == 7
    assert backoff.after_exit(served_s=60.0) == 1.0  # served a minute: a fresh death, not part of the loop
    assert backoff.after_exit(served_s=0.0) == 2.0  # a replacement that died before it started


def test_a_worker_that_never_starts_at_service_start_stops_the_service(tmp_path: Path) -> None:
    """The app cannot import: every worker fails before it listens, so the service stops (exit 1) at once."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANLING_")}
    env.update({"SANLING_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "SANLING_DATA_DIR": str(tmp_path)})
    script = ("import sys; from app.serving import serve_workers; "
              f"sys.exit(serve_workers('127.0.0.1', {port}, 2, app='no_such_module:create_app'))")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)
    assert result.returncode == 1, result.stderr.decode()
    assert b"never started" in result.stderr and time.monotonic() - started < 30
