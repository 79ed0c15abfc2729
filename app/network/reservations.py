"""Capacity reservations on transformers: check and book an application's kVA atomically (R2.3, issue 5 item 4).

An accepted application holds ``reserved_kva`` on one transformer; ``transformers.reserved_kva`` is the
sum over its applications, and the siting engine counts it in its feasibility formula
``(peak + reserved + added) / rated × 100 ≤ max_load_after_pct``. Booking re-checks that formula on the
transformer row *inside* the writing transaction:

* PostgreSQL: ``SELECT … FOR UPDATE`` locks the transformer rows (in asset-id order, so two moves never
  deadlock); a competitor waits until the first commits and then sees its booking.
* SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (``app.platform.db``), which takes the database's
  write lock, so bookings are serialised before they read.

The application's own booking is changed by a guarded ``UPDATE applications … WHERE reserved_transformer_asset_id
= <as read> AND reserved_kva = <as read>``: a booking moved or released meanwhile by a concurrent request (two
cancels) matches no row and answers 409 ``BOOKING_CHANGED`` instead of being released twice. The lifecycle's
transitions lock the application row first (``app.lifecycle.states.lock_for_transition``), then the transformer
rows here, so they never meet the guard and never deadlock.

The same transaction logs the new ``reserved_kva`` in ``capacity_changes`` and moves the
``asset_generation`` counters (``app.network.generations.record_capacity_changes``), so every worker applies the
booking to its siting index, without re-reading the network, before it answers its next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.network.generations import record_capacity_changes
from app.platform.audit import record_change
from app.platform.errors import ErrorStatuses
from app.platform.models import Application, Design, Transformer
from app.settings import Settings
from design_rules.profiles import JobClass, get_profile
from design_rules.siting_policy import added_kva
from gis.errors import SanlingError
from gis.index import fits_after_connection

IN_SERVICE = "in_service"


class CapacityTakenError(SanlingError):
    """The transformer no longer has room for this load: another application booked it first (HTTP 409)."""

    code = "CAPACITY_TAKEN"
    default_message = "The chosen transformer no longer has spare capacity for this load."


class BookingChangedError(SanlingError):
    """The application's booking changed since this request read it: a concurrent request moved or released it
    first (HTTP 409)."""

    code = "BOOKING_CHANGED"
    default_message = "The application's capacity booking was changed by a concurrent request; reload it."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = ((CapacityTakenError, 409), (BookingChangedError, 409))


@dataclass(frozen=True)
class ReservationTarget:
    """What an application should hold: ``reserved_kva`` on ``transformer_asset_id`` (None: nothing)."""

    transformer_asset_id: str | None
    reserved_kva: float
    max_load_after_pct: float


def reservation_kva(kw: float, settings: Settings, profile_id: str | None = None) -> float:
    """kVA booked for ``kw``: ``kw / power_factor × demand_factor``, the load the siting engine adds (R2.3)."""
    profile = get_profile(profile_id or settings.profile)
    return added_kva(kw, profile, settings.factor_overrides)


def target_for_design(design: Design, settings: Settings) -> ReservationTarget:
    """The booking a design needs.

    A ``transformer_upgrade`` job books nothing: by definition no transformer within reach has room, and
    the uprating project (中压配变改造) creates the capacity it will use.
    """
    profile = get_profile(design.profile_id)
    max_pct = profile.load_thresholds.max_load_after_pct
    if design.job_class == JobClass.TRANSFORMER_UPGRADE or not design.result.get("feasible_source", True):
        return ReservationTarget(None, 0.0, max_pct)
    kw = float(design.request["kw"])
    return ReservationTarget(design.transformer_asset_id, reservation_kva(kw, settings, design.profile_id), max_pct)


def move_reservation(session: Session, application: Application, target: ReservationTarget) -> bool:
    """Make ``application`` hold exactly ``target``: book, move, resize or release, in the caller's transaction.

    Returns whether anything changed. The caller commits (and rolls back on error).

    Raises
    ------
    CapacityTakenError
        The target transformer is not in service or has no room left for the load (nothing written).
    BookingChangedError
        A stored application's booking is no longer the one it was read with (a concurrent change won).
    """
    old_id, old_kva = application.reserved_transformer_asset_id, float(application.reserved_kva or 0.0)
    new_id, new_kva = target.transformer_asset_id, (target.reserved_kva if target.transformer_asset_id else 0.0)
    if old_id == new_id and abs(old_kva - new_kva) < 1e-9:
        return False
    ids = sorted({asset_id for asset_id in (old_id, new_id) if asset_id})
    rows = {row.asset_id: row for row in session.execute(
        select(Transformer.asset_id, Transformer.rated_kva, Transformer.peak_kva, Transformer.reserved_kva,
               Transformer.status)
        .where(Transformer.asset_id.in_(ids)).order_by(Transformer.asset_id).with_for_update())}
    reserved = {asset_id: float(row.reserved_kva or 0.0) for asset_id, row in rows.items()}
    if old_id in reserved:
        reserved[old_id] = max(0.0, reserved[old_id] - old_kva)
    if new_id is not None:
        row = rows.get(new_id)
        if row is None or row.status != IN_SERVICE or not fits_after_connection(
                committed_kva=float(row.peak_kva or 0.0) + reserved[new_id], added_kva=new_kva,
                rated_kva=float(row.rated_kva), max_load_after_pct=target.max_load_after_pct):
            limit = None if row is None else float(row.rated_kva) * target.max_load_after_pct / 100.0
            raise CapacityTakenError(
                transformer_asset_id=new_id, requested_kva=round(new_kva, 3),
                spare_kva=None if row is None or limit is None
                else round(limit - float(row.peak_kva or 0.0) - reserved[new_id], 3))
        reserved[new_id] += new_kva
    _set_booking(session, application, new_id, new_kva)
    for asset_id, value in reserved.items():
        session.execute(update(Transformer).where(Transformer.asset_id == asset_id).values(reserved_kva=value))
    session.flush()
    # workers apply logged bookings in place; no network rebuild (docs/siting.md, "Consistency")
    record_capacity_changes(session.connection(), reserved)
    return True


def _set_booking(session: Session, application: Application, asset_id: str | None, kva: float) -> None:
    """Store the application's new booking; a stored one only if it still holds the booking it was read with."""
    if not inspect(application).persistent:  # a new application: its INSERT carries the booking
        application.reserved_transformer_asset_id, application.reserved_kva = asset_id, kva
        return
    changed = session.execute(
        update(Application)
        .where(Application.id == application.id,
               Application.reserved_transformer_asset_id.is_not_distinct_from(application.reserved_transformer_asset_id),
               Application.reserved_kva == application.reserved_kva)
        .values(reserved_transformer_asset_id=asset_id, reserved_kva=kva)
        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise BookingChangedError(application_id=application.id,
                                  read_transformer_asset_id=application.reserved_transformer_asset_id)
    set_committed_value(application, "reserved_transformer_asset_id", asset_id)
    set_committed_value(application, "reserved_kva", kva)


class ReleaseReason(StrEnum):
    """Why a booking was given back (``applications.booking_release_reason``, audit ``booking_released``)."""

    CANCELLED = "cancelled"
    READING_AFTER_POWER_ON = "reading_after_power_on"
    TIMEOUT_AFTER_POWER_ON = "timeout_after_power_on"


def release_reservation(session: Session, application: Application, *,
                        reason: ReleaseReason = ReleaseReason.CANCELLED, now: datetime | None = None,
                        actor_user_id: int | None = None, actor_role: str | None = None,
                        reading_at: datetime | None = None) -> bool:
    """Give the application's booking back; returns whether it held one (issue 15 item 1).

    The one way a booking ends: cancelling (``reason`` ``cancelled``), a load reading after power-on or the
    timeout after power-on (``app.lifecycle.releases``). Through :func:`move_reservation`, so the transformer's
    ``reserved_kva`` drops by the booking under its row lock, the new value is logged in ``capacity_changes``
    (every worker applies it before its next answer) and the application's booking columns are cleared by the
    guarded UPDATE (a second release from a stale copy answers ``BOOKING_CHANGED``). What was released, when and
    why is kept on the application (``booking_released_*``) and audited ``booking_released`` in the same
    transaction; ``actor_*`` None is the system (the job).
    """
    transformer_asset_id = application.reserved_transformer_asset_id
    kva = float(application.reserved_kva or 0.0)
    if not move_reservation(session, application, ReservationTarget(None, 0.0, 100.0)):
        return False
    moment = now or datetime.now(UTC)
    application.booking_released_at, application.booking_release_reason = moment, ReleaseReason(reason).value
    application.booking_released_kva = kva
    application.booking_released_transformer_asset_id = transformer_asset_id
    application.booking_release_reading_at = reading_at
    session.flush()
    record_change(session, actor_user_id=actor_user_id, actor_role=actor_role, entity="application",
                  entity_id=str(application.id), action="booking_released",
                  before={"reserved_transformer_asset_id": transformer_asset_id, "reserved_kva": kva},
                  after={"reserved_transformer_asset_id": None, "reserved_kva": 0.0,
                         "reason": ReleaseReason(reason).value, "released_at": moment,
                         "powered_on_at": application.powered_on_at, "reading_at": reading_at})
    return True
