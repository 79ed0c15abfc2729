"""Sign-in throttling per account and per client address, shared by the workers through ``login_throttle``.

Every sign-in attempt is counted **before** its password is hashed (:func:`charge`), in one short transaction that
locks the two counter rows (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's ``SELECT … FOR UPDATE``), so N concurrent
attempts on any number of workers cannot all pass the limit. The attempt that reaches the limit sets the lock;
until ``locked_until`` every attempt is refused at once (429 ``RATE_LIMITED`` with ``Retry-After``) without
hashing. After a lock one more attempt is allowed; each failure past the limit doubles the lock, up to an hour.
A success (:func:`forgive`) deletes the account's counter and gives the address back the attempt it was charged.

>>> policy = ThrottlePolicy(max_failures=5, max_failures_per_address=30, lockout_s=60, window_s=900)
>>> [policy.lock_seconds(n, 5) for n in (5, 6, 7, 20)]
[60, 120, 240, 3600]
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.platform.models import LoginThrottle
from app.platform.ratelimit import RateLimitedError
from app.settings import Settings

#: The longest lock, unless SANLING_LOGIN_LOCKOUT_S is longer.
MAX_LOCK_S = 3600
#: One charge in this many also deletes the rows quiet for the window (so sprayed usernames do not pile up).
_SWEEP_ONE_IN = 64


@dataclass(frozen=True)
class ThrottlePolicy:
    """The limits (``SANLING_LOGIN_*``)."""

    max_failures: int
    max_failures_per_address: int
    lockout_s: int
    window_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        """The deployment's limits."""
        return cls(settings.login_max_failures, settings.login_max_failures_per_address, settings.login_lockout_s,
                   settings.login_failure_window_s)

    def lock_seconds(self, failures: int, limit: int) -> int:
        """The lock set by the attempt that brings the count to ``failures`` (≥ ``limit``): doubling, capped."""
        return min(self.lockout_s * 2 ** min(failures - limit, 20), max(MAX_LOCK_S, self.lockout_s))


def throttle_keys(username: str, address: str) -> tuple[str, str]:
    """The counter keys of an attempt: ``account:<sha256>`` and ``address:<sha256>`` (what was typed is not kept).

    >>> throttle_keys("PM.Wanzhou ", "10.0.0.1")[0] == throttle_keys("pm.wanzhou", "10.0.0.2")[0]
    True
    """
    def digest(value: str) -> str:
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()

    return f"account:{digest(username.strip().lower())}", f"address:{digest(address)}"


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for DateTime(timezone=True); Sanling stores UTC.
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _locked_rows(session: Session, keys: list[str], now: datetime) -> dict[str, LoginThrottle]:
    """Create the missing counter rows and return all of them locked for this transaction (keys in sorted order)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(LoginThrottle).values([{"key": key, "failures": 0, "last_attempt_at": now}
                                                 for key in keys]).on_conflict_do_nothing(index_elements=["key"]))
    rows = session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys)).order_by(LoginThrottle.key)
                           .with_for_update().execution_options(populate_existing=True))
    return {row.key: row for row in rows}


def charge(session: Session, *, username: str, address: str, policy: ThrottlePolicy,
           now: datetime | None = None) -> None:
    """Count one sign-in attempt before its password is checked, or refuse it; commits.

    Parameters
    ----------
    session : Session
        A session with no transaction open (the attempt's own unit of work).
    username, address : str
        As typed, and the client's address.
    policy : ThrottlePolicy
        The limits.
    now : datetime, optional
        The clock (UTC).

    Raises
    ------
    RateLimitedError
        The account or the address is locked (429, ``Retry-After`` = seconds until the later lock ends).
    """
    now = now or datetime.now(UTC)
    account_key, address_key = throttle_keys(username, address)
    limits = {account_key: policy.max_failures, address_key: policy.max_failures_per_address}
    try:
        rows = _locked_rows(session, sorted(limits), now)
        locked = [until for row in rows.values() if (until := _aware(row.locked_until)) is not None and until > now]
        if locked:
            session.rollback()
            raise RateLimitedError(max(1, math.ceil((max(locked) - now).total_seconds())),
                                   reason="too many failed sign-ins")
        for key, row in rows.items():
            if _aware(row.last_attempt_at) < now - timedelta(seconds=policy.window_s):  # type: ignore[operator]
                row.failures = 0  # quiet for the window: forgotten
            row.failures += 1
            row.last_attempt_at = now
            if row.failures >= limits[key]:  # this attempt may still succeed; the next ones wait
                row.locked_until = now + timedelta(seconds=policy.lock_seconds(row.failures, limits[key]))
        if random.randrange(_SWEEP_ONE_IN) == 0:
            session.execute(delete(LoginThrottle).where(
                LoginThrottle.last_attempt_at < now - timedelta(seconds=policy.window_s),
                or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
                LoginThrottle.key.not_in(list(limits))))
        session.commit()
    except BaseException:
        session.rollback()
        raise


def forgive(session: Session, *, username: str, address: str, policy: ThrottlePolicy) -> None:
    """After a successful sign-in: forget the account's failures, give the address back its attempt; commits."""
    account_key, address_key = throttle_keys(username, address)
    try:
        rows = _locked_rows(session, sorted((account_key, address_key)), datetime.now(UTC))
        session.delete(rows[account_key])
        row = rows[address_key]
        row.failures = max(0, row.failures - 1)
        if row.failures < policy.max_failures_per_address:
            row.locked_until = None  # the lock was this attempt's own
        session.commit()
    except BaseException:
        session.rollback()
        raise
