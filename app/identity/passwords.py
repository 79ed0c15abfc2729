"""argon2id hashing and verification of passwords and API-key secrets, with the cost profiles (docs/auth.md).

argon2 is slow and memory-hungry by design (64 MiB a hash in the default profile), so the verifications a client
without credentials can cause (sign-in, API keys) take a slot of :func:`hash_slots` first: at most
``SANLING_PASSWORD_HASH_CONCURRENCY`` at once per process. Sign-in computes its hash with
:func:`verify_password_off_loop`, in threads of the slots' own limiter, never on the event loop or in a request
thread, so a storm of sign-ins queues there while every other request goes on being answered.
"""

from __future__ import annotations

import secrets
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import anyio
import anyio.to_thread
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


@dataclass(frozen=True)
class HashSlots:
    """At most ``size`` argon2 computations at once in this process.

    ``semaphore`` bounds the threads that hash, whoever runs them; ``limiter`` (the same size) is the thread pool
    of :func:`verify_password_off_loop`, so waiting sign-ins wait on the event loop, not in threads.
    """

    size: int
    semaphore: threading.BoundedSemaphore
    limiter: anyio.CapacityLimiter


@lru_cache(maxsize=8)
def hash_slots(size: int) -> HashSlots:
    """The process's hash slots for ``SANLING_PASSWORD_HASH_CONCURRENCY`` = ``size`` (one set per process)."""
    return HashSlots(size, threading.BoundedSemaphore(size), anyio.CapacityLimiter(size))


def verify_password(password_hash: str, password: str, *, slots: HashSlots | None = None) -> bool:
    """Return whether ``password`` matches ``password_hash``; a malformed hash counts as a mismatch.

    Parameters
    ----------
    password_hash : str
        An argon2 hash from :func:`hash_password`.
    password : str
        The clear text presented.
    slots : HashSlots, optional
        Wait for a slot first (callers reachable without credentials pass :func:`hash_slots`).

    Returns
    -------
    bool
        True when they match.
    """
    with slots.semaphore if slots is not None else nullcontext():
        try:
            return password_hasher().verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


async def verify_password_off_loop(password_hash: str | None, password: str, *, slots: HashSlots,
                                   profile: Literal["default", "fast"] = "default") -> bool:
    """:func:`verify_password` in a thread of ``slots.limiter``; ``None`` verifies against the dummy hash (False).

    The event loop and the request threads stay free while the hash is computed or waits for its slot.
    """
    def verify() -> bool:
        matches = verify_password(password_hash or _dummy_hash(profile), password, slots=slots)
        return matches and password_hash is not None

    return await anyio.to_thread.run_sync(verify, limiter=slots.limiter)

