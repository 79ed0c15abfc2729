"""API keys of terminals: creation (``sl_<prefix>_<secret>``), shape check and verification (docs/auth.md)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.identity.errors import CredentialsInvalidError, TokenExpiredError
from app.identity.passwords import HashSlots, _dummy_hash, hash_slots, verify_password
from app.platform.models import ApiKey, User
from app.settings import Settings

API_KEY_PREFIX_LENGTH = 8
# last_used_at is written at most this often per key, so a busy terminal does not turn every read into a write.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def new_api_key() -> tuple[str, str]:
    """Generate an API key.

    Returns
    -------
    tuple of str
        ``(prefix, key)``: ``prefix`` is 8 lower-case hex characters (stored, indexed, shown in lists) and
        ``key`` is ``sl_<prefix>_<secret>`` with a ``secrets.token_urlsafe(32)`` secret, shown once.
    """
    prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
    return prefix, f"sl_{prefix}_{secrets.token_urlsafe(32)}"


def api_key_prefix(key: str) -> str:
    """Return the prefix of a key shaped ``sl_<prefix>_<secret>``.

    Parameters
    ----------
    key : str
        The key as presented.

    Returns
    -------
    str
        The 8-character prefix.

    Raises
    ------
    CredentialsInvalidError
        The key does not have the expected shape.
    """
    prefix = key[3:3 + API_KEY_PREFIX_LENGTH]
    shaped = (key.startswith("sl_") and len(key) > 4 + API_KEY_PREFIX_LENGTH
              and key[3 + API_KEY_PREFIX_LENGTH] == "_" and all(c in "0123456789abcdef" for c in prefix))
    if not shaped:
        raise CredentialsInvalidError("The API key is not valid.")
    return prefix


class _VerifiedKeys:
    """Bounded memory of (stored hash → SHA-256 of the key that verified against it).

    argon2 verification costs tens of milliseconds by design; a terminal sends its key on every
    request, so a key already verified in this process is recognised by its SHA-256 instead. The key
    row is still read on every request, so revocation and expiry take effect at once.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self._digests: OrderedDict[str, bytes] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def matches(self, key_hash: str, key: str, *, slots: HashSlots | None = None) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        with self._lock:
            known = self._digests.get(key_hash)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if not verify_password(key_hash, key, slots=slots):
            return False
        with self._lock:
            self._digests[key_hash] = digest
            self._digests.move_to_end(key_hash)
            while len(self._digests) > self._maxsize:
                self._digests.popitem(last=False)
        return True


_verified_keys = _VerifiedKeys()


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for DateTime(timezone=True); Sanling stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def authenticate_api_key(session: Session, key: str, *, settings: Settings,
                         now: datetime | None = None) -> tuple[User, ApiKey]:
    """Return the user and key row of a valid, unrevoked, unexpired API key.

    Parameters
    ----------
    session : Session
        The request's session; ``last_used_at`` is updated on it (at most once a minute per key).
    key : str
        The key as presented, ``sl_<prefix>_<secret>``.
    settings : Settings
        Supplies the hash cost profile of the dummy hash used for unknown prefixes.
    now : datetime, optional
        The current time (UTC); defaults to the clock.

    Returns
    -------
    tuple of (User, ApiKey)
        The key's owner and the key row.

    Raises
    ------
    CredentialsInvalidError
        Malformed, unknown or revoked key, or its owner is deactivated.
    TokenExpiredError
        The key is genuine but past ``expires_at``.
    """
    now = now or datetime.now(UTC)
    slots = hash_slots(settings.password_hash_concurrency)  # a key not seen before costs one argon2 hash
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    if row is None:
        verify_password(_dummy_hash(settings.password_hash_profile), key, slots=slots)
        raise CredentialsInvalidError("The API key is not valid.")
    if not _verified_keys.matches(row.key_hash, key, slots=slots):
        raise CredentialsInvalidError("The API key is not valid.")
    if row.revoked_at is not None:
        raise CredentialsInvalidError("The API key has been revoked.")
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        raise TokenExpiredError("The API key has expired.")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise CredentialsInvalidError("The API key is not valid.")
    if row.last_used_at is None or now - _aware(row.last_used_at) >= API_KEY_TOUCH_INTERVAL:
        row.last_used_at = now
        session.commit()  # before the route runs: the only write authentication makes
    return user, row

