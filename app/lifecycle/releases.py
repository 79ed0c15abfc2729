"""Booking release after power-on (issue 15 item 1; R2.3): give a powered-on application's booking back once the
customer's load is in the transformer's readings, or after a timeout.

Power-on keeps the booking: until a load reading holds the new load, the transformer's peak does not, and the
booking keeps the room. The periodic job ``booking_release`` (listed in ``app.wiring.service_jobs``; ``sanling jobs
run booking_release`` runs it once) releases, under the profile's ``booking_release`` rules:

* ``reading_after_power_on``: the transformer has a load reading read at least ``reading_after_days`` after
  power-on (the reading's ``read_at`` is kept and audited);
* ``timeout_after_power_on``: no such reading, and ``timeout_days`` have passed since power-on.

Each release goes through ``app.network.reservations.release_reservation``, the function cancelling uses: the
transformer's ``reserved_kva`` drops under its row lock and is logged in ``capacity_changes`` (every worker's
siting index, capacity worklists and disclosure count it before their next answer), the application keeps what
was released, when and why, and the audit row ``booking_released`` carries the reason.

Race-safe as the deadline watch: an application is released only under its row lock (``SELECT … FOR UPDATE SKIP
LOCKED``, the lock every transition takes), re-read under it; one a transition holds right now is skipped until
the next run, and one whose booking is gone meanwhile is left alone (released once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.lifecycle.states import ApplicationStatus, lock_or_skip
from app.network.reservations import ReleaseReason, release_reservation
from app.platform.audit import as_utc
from app.platform.models import Application, LoadReading
from app.settings import Settings
from design_rules.profiles import get_profile

JOB_NAME = "booking_release"
#: How often the job runs, seconds (a reading releases its bookings within one interval of its import).
INTERVAL_S = 900.0


@dataclass
class ReleaseReport:
    """What one run did."""

    checked: int = 0
    released_on_reading: int = 0
    released_on_timeout: int = 0
    skipped_locked: int = 0
    released: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        """Counts, for the job runner and the CLI."""
        return {"checked": self.checked, "released_on_reading": self.released_on_reading,
                "released_on_timeout": self.released_on_timeout, "skipped_locked": self.skipped_locked}


def _latest_reading(session: Session, transformer_asset_id: str) -> datetime | None:
    """``read_at`` of the transformer's latest load reading (compared in Python: SQLite keeps text)."""
    found = session.scalar(select(LoadReading.read_at).where(LoadReading.transformer_asset_id == transformer_asset_id)
                           .order_by(LoadReading.read_at.desc()).limit(1))
    return None if found is None else as_utc(found)


def release_due(application: Application, latest_reading_at: datetime | None, now: datetime, *,
                reading_after: timedelta, timeout: timedelta) -> ReleaseReason | None:
    """Why ``application``'s booking is due for release now, or None (pure: the caller has read the row)."""
    if application.powered_on_at is None:
        return None
    powered_on_at = as_utc(application.powered_on_at)
    if latest_reading_at is not None and latest_reading_at >= powered_on_at + reading_after:
        return ReleaseReason.READING_AFTER_POWER_ON
    if as_utc(now) >= powered_on_at + timeout:
        return ReleaseReason.TIMEOUT_AFTER_POWER_ON
    return None


def release_bookings(session: Session, settings: Settings, *, now: datetime | None = None) -> ReleaseReport:
    """Release every powered-on booking that is due (flushes, never commits); see the module docstring."""
    now = now or datetime.now(UTC)
    rules = get_profile(settings.profile).booking_release
    reading_after, timeout = timedelta(days=rules.reading_after_days), timedelta(days=rules.timeout_days)
    report = ReleaseReport()
    held = session.scalars(
        select(Application).where(Application.status == ApplicationStatus.POWERED_ON.value,
                                  Application.reserved_transformer_asset_id.is_not(None))
        .order_by(Application.id)).all()
    readings: dict[str, datetime | None] = {}
    for application in held:
        report.checked += 1
        asset_id = str(application.reserved_transformer_asset_id)
        if asset_id not in readings:
            readings[asset_id] = _latest_reading(session, asset_id)
        if release_due(application, readings[asset_id], now, reading_after=reading_after, timeout=timeout) is None:
            continue
        # About to write: take the application's row lock first, as every transition does, and re-read under it;
        # one a transition holds right now waits for the next run (the job never waits).
        locked = lock_or_skip(session, application.id)
        if locked is None:
            report.skipped_locked += 1
            continue
        if locked.status != ApplicationStatus.POWERED_ON.value or locked.reserved_transformer_asset_id is None:
            continue
        asset_id = str(locked.reserved_transformer_asset_id)
        latest = readings[asset_id] if asset_id in readings else _latest_reading(session, asset_id)
        reason = release_due(locked, latest, now, reading_after=reading_after, timeout=timeout)
        if reason is None:
            continue
        reading_at = latest if reason is ReleaseReason.READING_AFTER_POWER_ON else None
        if release_reservation(session, locked, reason=reason, now=now, reading_at=reading_at):
            locked.updated_at = now
            report.released.append((locked.id, reason.value))
            if reason is ReleaseReason.READING_AFTER_POWER_ON:
                report.released_on_reading += 1
            else:
                report.released_on_timeout += 1
    session.flush()
    return report


def booking_release_job(session_factory: sessionmaker[Session], settings: Settings, *,
                        now: datetime | None = None) -> dict[str, int]:
    """Job function: one release run in its own transaction."""
    with session_factory() as session:
        report = release_bookings(session, settings, now=now)
        session.commit()
    return report.to_dict()
