"""The service's explicit tables: which error answers which HTTP status, and which periodic jobs run.

Both are built here, from constants the contexts declare, by :func:`app.main.create_app` and by the CLI
(``sanling jobs``) through the same functions, and are immutable afterwards. Nothing is registered by
importing a module, so the tables do not depend on which modules happened to be imported first.
"""

from __future__ import annotations

from app.design import service as design_service
from app.identity import auth, users
from app.lifecycle import contracts, deadlines, releases
from app.lifecycle import errors as lifecycle_errors
from app.network import reservations
from app.platform import idempotency, jobs, ratelimit, uploads
from app.platform.errors import BASE_ERROR_STATUSES, ErrorTable
from app.platform.jobs import JobRegistry


def error_table() -> ErrorTable:
    """Return the exception → HTTP status table: every context's own errors, then the general classes."""
    return ErrorTable(
        auth.ERROR_STATUSES
        + users.ERROR_STATUSES
        + ratelimit.ERROR_STATUSES
        + idempotency.ERROR_STATUSES
        + uploads.ERROR_STATUSES
        + reservations.ERROR_STATUSES
        + design_service.ERROR_STATUSES
        + lifecycle_errors.ERROR_STATUSES
        + contracts.ERROR_STATUSES
        + BASE_ERROR_STATUSES
    )


def service_jobs() -> JobRegistry:
    """Return the registry of the service's periodic jobs (docs/lifecycle-infra.md)."""
    return (
        JobRegistry()
        .register("deliver_notifications", lambda settings: settings.notify_interval_s, jobs.deliver_notifications)
        .register("cleanup_idempotency_keys", jobs.IDEMPOTENCY_CLEANUP_INTERVAL_S, jobs.cleanup_idempotency_keys)
        .register(deadlines.JOB_NAME, lambda settings: settings.deadline_watch_interval_s, deadlines.deadline_watch_job)
        .register(releases.JOB_NAME, releases.INTERVAL_S, releases.booking_release_job)
    )
