"""argon2id hashing and verification of passwords and API-key secrets, with the cost profiles (docs/auth.md)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any, Literal

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Cheap argon2id parameters for test suites (SANLING_PASSWORD_HASH_PROFILE=fast); production keeps
# argon2-cffi's defaults (time_cost=3, memory_cost=64 MiB, parallelism=4; RFC 9106 low-memory profile).
_FAST_HASH_PARAMETERS: dict[str, Any] = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@lru_cache(maxsize=4)
def password_hasher(profile: Literal["default", "fast"] = "default") -> PasswordHasher:
    """Return the argon2id hasher of a cost profile.

    Parameters
    ----------
    profile : {"default", "fast"}
        ``default``: argon2-cffi's defaults; ``fast``: cheap parameters for tests only.

    Returns
    -------
    PasswordHasher
        A hasher producing ``$argon2id$`` strings; verification reads the cost from the hash itself,
        so hashes made under either profile verify under both.
    """
    if profile == "fast":
        return PasswordHasher(type=Type.ID, **_FAST_HASH_PARAMETERS)
    return PasswordHasher(type=Type.ID)


@lru_cache(maxsize=4)
def _dummy_hash(profile: Literal["default", "fast"]) -> str:
    # Verified against when the username or key prefix is unknown, so a miss costs what a hit costs.
    return password_hasher(profile).hash(secrets.token_urlsafe(16))


def hash_password(password: str, profile: Literal["default", "fast"] = "default") -> str:
    """Return the argon2id hash of ``password`` (also used for API-key secrets).

    Parameters
    ----------
    password : str
        The clear text.
    profile : {"default", "fast"}
        Cost profile, see :func:`password_hasher`.

    Returns
    -------
    str
        The encoded hash, ``$argon2id$v=19$m=…,t=…,p=…$salt$hash``.
    """
    return password_hasher(profile).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Return whether ``password`` matches ``password_hash``; a malformed hash counts as a mismatch.

    Parameters
    ----------
    password_hash : str
        An argon2 hash from :func:`hash_password`.
    password : str
        The clear text presented.

    Returns
    -------
    bool
        True when they match.
    """
    try:
        return password_hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False

