"""Periodic jobs (R5.4 deadline watch, notification delivery, key cleanup): an immutable registry, a database lease
so that one of N workers runs each job per interval, the runner thread in the app lifespan and the CLI."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.cli import main
from app.identity.auth import Role
from app.main import create_app
from app.platform import migrate
from app.platform.db import create_db_engine, make_session_factory
from app.platform.jobs import (
    JobRegistry,
    JobRunner,
    claim_lease,
    cleanup_idempotency_keys,
    deliver_notifications,
    release_lease,
    run_due_jobs,
)
from app.platform.models import IdempotencyKey, JobLease, Notification
from app.platform.notifications import notify
from app.settings import Settings
from app.wiring import service_jobs
from tests.app.auth_helpers import make_user, settings_for_tests

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def jobs_db_url(backend: str, fresh_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database the job tests commit to (each test uses its own job names and users)."""
    url = fresh_database(backend)
    migrate.upgrade(url)
    return str(url)


@pytest.fixture
def engine(jobs_db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(jobs_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def settings(jobs_db_url: str, tmp_path: Path) -> Settings:
    return settings_for_tests(jobs_db_url, data_dir=tmp_path, jobs_tick_s=0.05)


def _name() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


def _noop(session_factory: sessionmaker[Session], settings: Settings) -> None:
    return None


def test_registering_builds_a_new_registry() -> None:
    empty = JobRegistry()
    one = empty.register("watch", 60, _noop)
    assert dict(empty.jobs) == {} and list(one.jobs) == ["watch"]
    assert one.register("watch", 60, _noop).jobs.keys() == one.jobs.keys()  # same function again: harmless
    with pytest.raises(ValueError, match="different job"):
        one.register("watch", 60, lambda factory, settings: None)
    with pytest.raises(ValueError, match="positive"):
        empty.register("never", 0, _noop)


def test_the_infrastructure_registers_its_own_jobs(settings: Settings) -> None:
    registry = service_jobs()
    assert {"deliver_notifications", "cleanup_idempotency_keys"} <= set(registry.jobs)
    assert registry.get("deliver_notifications").interval_for(settings) == settings.notify_interval_s


def test_a_lease_is_won_once_per_interval(factory: sessionmaker[Session]) -> None:
    name = _name()
    with factory() as session:
        assert claim_lease(session, name=name, interval_s=60, holder="w1", now=T0)
        assert not claim_lease(session, name=name, interval_s=60, holder="w2", now=T0 + timedelta(seconds=30))
        release_lease(session, name=name, interval_s=60, holder="w1", started_at=T0, error=None,
                      now=T0 + timedelta(seconds=5))
        assert not claim_lease(session, name=name, interval_s=60, holder="w2", now=T0 + timedelta(seconds=59))
        assert claim_lease(session, name=name, interval_s=60, holder="w2", now=T0 + timedelta(seconds=60))
        assert session.get(JobLease, name).holder == "w2"  # type: ignore[union-attr]


def test_a_running_job_keeps_its_lease_until_released(factory: sessionmaker[Session]) -> None:
    """A run slower than its interval is not started a second time; a crashed worker's lease lapses."""
    name = _name()
    with factory() as session:
        assert claim_lease(session, name=name, interval_s=10, holder="w1", now=T0)
        assert not claim_lease(session, name=name, interval_s=10, holder="w2", now=T0 + timedelta(seconds=120))
        assert claim_lease(session, name=name, interval_s=10, holder="w2", now=T0 + timedelta(minutes=11))


def test_one_of_many_workers_wins_a_lease(engine: Engine) -> None:
    """Eight workers, each with its own connection, claim the same job at the same moment: one wins."""
    name = _name()
    barrier = threading.Barrier(8)

    def claim(holder: int) -> bool:
        with Session(engine) as session:
            session.get(JobLease, name)  # opens the transaction, like a worker's first query
            session.rollback()
            barrier.wait()
            return claim_lease(session, name=name, interval_s=60, holder=f"w{holder}", now=T0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(claim, range(8)))
    assert sum(results) == 1


def test_run_due_jobs_runs_each_job_once_and_records_failures(factory: sessionmaker[Session],
                                                              settings: Settings) -> None:
    calls: list[str] = []
    ok_name, broken_name = _name(), _name()

    def ok(session_factory: sessionmaker[Session], settings: Settings) -> None:
        calls.append(ok_name)

    def broken(session_factory: sessionmaker[Session], settings: Settings) -> None:
        raise RuntimeError("deadline watch exploded")

    registry = JobRegistry().register(ok_name, 3600, ok).register(broken_name, 3600, broken)
    assert sorted(run_due_jobs(registry, factory, settings, holder="w1")) == sorted([ok_name, broken_name])
    assert run_due_jobs(registry, factory, settings, holder="w2") == []  # within the interval: nobody runs
    assert calls == [ok_name]
    with factory() as session:
        broken_lease, ok_lease = session.get(JobLease, broken_name), session.get(JobLease, ok_name)
    assert broken_lease.last_error == "RuntimeError: deadline watch exploded"  # type: ignore[union-attr]
    assert ok_lease.last_error is None and ok_lease.last_finished_at is not None  # type: ignore[union-attr]


def test_runner_thread_runs_due_jobs_until_stopped(factory: sessionmaker[Session], settings: Settings) -> None:
    ran = threading.Event()
    registry = JobRegistry().register(_name(), 3600, lambda session_factory, settings: ran.set())
    runner = JobRunner(factory, settings, registry).start()
    try:
        assert ran.wait(10)
    finally:
        runner.stop()


def _pending_notification(engine: Engine) -> int:
    user = make_user(engine, Role.CUSTOMER_MANAGER)
    with Session(engine) as session:
        row = notify(session, user_id=user.id, kind="deadline_overdue", subject="施工已超期", body="escalated")
        assert row is not None
        session.commit()
        return row.id


def test_the_app_lifespan_runs_jobs_when_enabled(engine: Engine, jobs_db_url: str, tmp_path: Path) -> None:
    """SANLING_JOBS_ENABLED: the app's runner delivers a pending warning without any request (R5.4)."""
    notification_id = _pending_notification(engine)
    settings = settings_for_tests(jobs_db_url, data_dir=tmp_path, jobs_enabled=True, jobs_tick_s=0.05,
                                  notify_interval_s=1)
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if session.get(Notification, notification_id).sent_at is not None:  # type: ignore[union-attr]
                    break
            time.sleep(0.05)
    with Session(engine) as session:
        assert session.get(Notification, notification_id).sent_at is not None  # type: ignore[union-attr]


def test_jobs_are_off_by_default_outside_serve() -> None:
    assert Settings.model_fields["jobs_enabled"].default is False


def test_deliver_notifications_job(engine: Engine, factory: sessionmaker[Session], settings: Settings) -> None:
    notification_id = _pending_notification(engine)
    result = deliver_notifications(factory, settings)
    assert result["sent"] >= 1 and result["failed"] == 0
    with factory() as session:
        assert session.get(Notification, notification_id).sent_at is not None  # type: ignore[union-attr]


def test_cleanup_idempotency_keys_job(engine: Engine, factory: sessionmaker[Session], settings: Settings) -> None:
    user = make_user(engine, Role.PROJECT_MANAGER)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for key, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=1))):
            conn.execute(insert(IdempotencyKey).values(user_id=user.id, key=key, method="POST", path="/x",
                                                       body_fingerprint="0" * 64, status_code=201,
                                                       response_body={}, created_at=now - age))
    assert cleanup_idempotency_keys(factory, settings)["deleted"] >= 1
    with factory() as session:
        left = set(session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.user_id == user.id)))
    assert left == {"fresh"}


@pytest.fixture
def cli_env(jobs_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from app.settings import get_settings

    monkeypatch.setenv("SANLING_DATABASE_URL", jobs_db_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_lists_and_runs_jobs(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "run", "cleanup_idempotency_keys"]) == 0
    assert '"deleted"' in capsys.readouterr().out
    assert main(["jobs", "list"]) == 0
    lines = {line.split("\t")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {"deliver_notifications", "cleanup_idempotency_keys"} <= set(lines)
    assert "every 3600 s" in lines["cleanup_idempotency_keys"]
    assert main(["jobs", "run", "no_such_job"]) == 2
    assert "no job 'no_such_job'" in capsys.readouterr().err
