"""Periodic jobs: an immutable registry, a database lease per job, and a runner thread per worker process.

The service's registry is built by ``app.wiring.service_jobs`` (for ``create_app`` and ``sanling jobs``);
nothing registers a job by being imported. A job is ``fn(session_factory, settings)``; it opens and commits its
own sessions. With several worker processes the database lease (``job_leases``) makes one of them run the job
per interval.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.platform.audit import as_utc, utc_now
from app.platform.idempotency import delete_expired_keys
from app.platform.models import JobLease
from app.platform.notifications import deliver_pending, sender_from_settings

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger("sanling.jobs")

JobFunction = Callable[[sessionmaker[Session], "Settings"], object]
"""A job: ``fn(session_factory, settings)``; it opens and commits its own sessions; a return value is shown
by ``sanling jobs run``."""

# While a run is in progress its lease is held this long at least, so a slow run is not started twice; a crashed
# worker's lease lapses after it.
RUNNING_LEASE_S = 600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PeriodicJob:
    """A registered job: a unique name, its interval (seconds, or a function of the settings) and the function."""

    name: str
    interval_s: float | Callable[[Settings], float]
    fn: JobFunction

    def interval_for(self, settings: Settings) -> float:
        """Return the interval in seconds under ``settings``."""
        return float(self.interval_s(settings) if callable(self.interval_s) else self.interval_s)


@dataclass(frozen=True)
class JobRegistry:
    """An immutable name → job mapping; :meth:`register` returns a new registry."""

    jobs: Mapping[str, PeriodicJob] = field(default_factory=lambda: MappingProxyType({}))

    def register(self, name: str, interval_s: float | Callable[[Settings], float], fn: JobFunction) -> JobRegistry:
        """Return a registry with ``name`` added; the same name with another function is an error."""
        if not name or len(name) > 100:
            raise ValueError("a job name is 1-100 characters")
        if not callable(interval_s) and interval_s <= 0:
            raise ValueError("interval_s must be positive")
        known = self.jobs.get(name)
        if known is not None and known.fn is not fn:
            raise ValueError(f"a different job is already registered as {name!r}")
        return JobRegistry(MappingProxyType({**self.jobs, name: PeriodicJob(name, interval_s, fn)}))

    def __iter__(self) -> Iterator[PeriodicJob]:
        """Iterate over the jobs in name order."""
        return iter(sorted(self.jobs.values(), key=lambda job: job.name))

    def get(self, name: str) -> PeriodicJob:
        """Return the job called ``name``; ``KeyError`` names the known jobs."""
        try:
            return self.jobs[name]
        except KeyError:
            raise KeyError(f"no job {name!r}; known: {', '.join(sorted(self.jobs))}") from None


def worker_id() -> str:
    """Return ``host:pid`` naming this worker process in ``job_leases.holder`` and ``import_jobs.holder``."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def holder_gone(holder: str | None, since: datetime) -> bool:
    """Whether ``holder`` (a :func:`worker_id`) is a process of this host that gave up what it took on at ``since``.

    True when the process is dead, or when its pid now belongs to a process started after ``since`` (pid
    reuse, read from ``/proc`` on Linux). False for another host's process, which this one cannot see.
    """
    host, _, pid_text = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = _process_started_at(pid)
    return started is not None and started > since + timedelta(seconds=1)


def _process_started_at(pid: int) -> datetime | None:
    """When a local process started, from ``/proc`` (Linux); None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot_s = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime "))
        return datetime.fromtimestamp(boot_s + int(fields[19]) / os.sysconf("SC_CLK_TCK"), UTC)  # field 22, starttime
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def claim_lease(session: Session, *, name: str, interval_s: float, holder: str, now: datetime | None = None) -> bool:
    """Try to take job ``name``'s lease for one run; commit and return True when this caller won it.

    One ``UPDATE job_leases … WHERE name = :name AND expires_at <= :now`` decides: on PostgreSQL a competing
    UPDATE waits for the winner and then no longer matches; on SQLite writers are serialised by BEGIN IMMEDIATE.
    The lease is held ``max(interval_s, RUNNING_LEASE_S)`` while the run lasts (see :func:`release_lease`).

    Parameters
    ----------
    session : Session
        A session used only for the lease (this function commits it).
    name : str
        The job's name.
    interval_s : float
        The job's interval.
    holder : str
        Who claims, e.g. :func:`worker_id`.
    now : datetime, optional
        The server clock (UTC) by default.

    Returns
    -------
    bool
        Whether the caller should run the job now.
    """
    now = as_utc(now or utc_now())
    if session.get(JobLease, name) is None:
        try:
            with session.begin_nested():
                session.add(JobLease(name=name, expires_at=_EPOCH))
        except IntegrityError:
            pass  # another worker created it at the same moment
        session.commit()
    held_until = now + timedelta(seconds=max(interval_s, RUNNING_LEASE_S))
    result = session.execute(update(JobLease).where(JobLease.name == name, JobLease.expires_at <= now)
                             .values(expires_at=held_until, holder=holder, last_started_at=now)
                             .execution_options(synchronize_session=False))
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_lease(session: Session, *, name: str, interval_s: float, holder: str, started_at: datetime,
                  error: str | None, now: datetime | None = None) -> None:
    """After a run: next run due ``interval_s`` after its start; record the finish time and error (commits)."""
    now = as_utc(now or utc_now())
    next_due = max(as_utc(started_at) + timedelta(seconds=interval_s), now)
    session.execute(update(JobLease).where(JobLease.name == name, JobLease.holder == holder)
                    .values(expires_at=next_due, last_finished_at=now, last_error=error)
                    .execution_options(synchronize_session=False))
    session.commit()


def run_job(job: PeriodicJob, session_factory: sessionmaker[Session], settings: Settings) -> object:
    """Run ``job`` once, now, without the lease (``sanling jobs run``); return its result."""
    return job.fn(session_factory, settings)


def run_due_jobs(registry: JobRegistry, session_factory: sessionmaker[Session], settings: Settings, *,
                 holder: str | None = None) -> list[str]:
    """Run every job of ``registry`` whose lease this worker wins; return the names of those that ran.

    A failing job is logged and its error kept in ``job_leases.last_error``; the other jobs still run.
    """
    holder = holder or worker_id()
    ran: list[str] = []
    for job in registry:
        interval_s = job.interval_for(settings)
        with session_factory() as session:
            if not claim_lease(session, name=job.name, interval_s=interval_s, holder=holder):
                continue
        started_at = utc_now()
        error: str | None = None
        try:
            job.fn(session_factory, settings)
        except Exception as exc:  # one broken job must not stop the others
            logger.exception("periodic job %s failed", job.name)
            error = f"{type(exc).__name__}: {exc}"[:2000]
        with session_factory() as session:
            release_lease(session, name=job.name, interval_s=interval_s, holder=holder, started_at=started_at,
                          error=error)
        ran.append(job.name)
    return ran


class JobRunner:
    """A daemon thread that calls :func:`run_due_jobs` every ``SANLING_JOBS_TICK_S`` seconds until stopped."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, registry: JobRegistry) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._registry = registry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sanling-jobs", daemon=True)

    def start(self) -> JobRunner:
        """Start the thread; return self."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the thread to stop and wait for the current run to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        holder = worker_id()
        while not self._stop.is_set():
            try:
                run_due_jobs(self._registry, self._session_factory, self._settings, holder=holder)
            except Exception:  # the database may be briefly unreachable; try again next tick
                logger.exception("periodic job runner tick failed")
            self._stop.wait(self._settings.jobs_tick_s)


def lease_states(session: Session) -> dict[str, JobLease]:
    """Return the lease rows by job name (for ``sanling jobs list``)."""
    return {row.name: row for row in session.scalars(select(JobLease))}


# --- the infrastructure's own jobs ------------------------------------------------------------------------------

NOTIFY_BATCH = 20
IDEMPOTENCY_CLEANUP_INTERVAL_S = 3600.0


def deliver_notifications(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Job: deliver unsent notifications with the configured sender, committing after each batch of 20."""
    sender = sender_from_settings(settings)
    sent = failed = 0
    while True:
        with session_factory() as session:
            report = deliver_pending(session, sender, limit=NOTIFY_BATCH)
            session.commit()
        sent, failed = sent + report.sent, failed + report.failed
        if report.failed or report.sent < NOTIFY_BATCH:  # a failing sender is retried next run, not now
            return {"sent": sent, "failed": failed}


def cleanup_idempotency_keys(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Job: delete Idempotency-Keys older than ``SANLING_IDEMPOTENCY_TTL_HOURS``."""
    with session_factory() as session:
        deleted = delete_expired_keys(session, ttl=timedelta(hours=settings.idempotency_ttl_hours))
        session.commit()
    return {"deleted": deleted}
