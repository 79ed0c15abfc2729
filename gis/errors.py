"""Error base shared by every Sanling package: a stable code, a human message and details."""

from __future__ import annotations

from typing import Any


class SanlingError(Exception):
    """Base of every expected, user-facing error.

    Subclasses set ``code`` (stable, UPPER_SNAKE, machine-readable) and ``default_message``.
    ``details`` carries machine-readable context such as the field, row or value at fault.
    ``app/errors.py`` maps each subclass to an HTTP status; the CLI prints code and message.
    """

    code: str = "SANLING_ERROR"
    default_message: str = "The request could not be processed."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body used by the API: ``{code, message, details}``."""
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInputError(SanlingError):
    """A value supplied by the caller is malformed or out of range."""

    code = "INVALID_INPUT"
    default_message = "A value in the request is invalid."


class NotFoundError(SanlingError):
    """A named object does not exist."""

    code = "NOT_FOUND"
    default_message = "The requested object does not exist."
