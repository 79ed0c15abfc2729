"""Uploaded files (application documents R1.2, stage photos R5): type and size checks, SHA-256, stored under DATA_DIR.

Files are stored content-addressed, ``DATA_DIR/uploads/<sha256[:2]>/<sha256>.<ext>``, never in the database;
the row that refers to a file keeps its name, type, size and checksum. Writing the same bytes twice stores
one file, and a file written by a request whose transaction later rolled back is harmless.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.platform.errors import ErrorStatuses
from gis.errors import InvalidInputError, SanlingError

UPLOAD_DIR = "uploads"
_CHUNK_BYTES = 1 << 20
#: Accepted types, recognised by their leading bytes (the client's Content-Type is not trusted).
SIGNATURES: dict[str, tuple[bytes, str]] = {
    "application/pdf": (b"%PDF-", ".pdf"),
    "image/jpeg": (b"\xff\xd8\xff", ".jpg"),
    "image/png": (b"\x89PNG\r\n\x1a\n", ".png"),
}


class UploadTypeError(InvalidInputError):
    """The file is not a PDF, JPEG or PNG (HTTP 415)."""

    code = "UPLOAD_TYPE_UNSUPPORTED"
    default_message = "Upload a PDF, JPEG or PNG file."


class UploadTooLargeError(SanlingError):
    """The file is larger than ``SANLING_UPLOAD_MAX_BYTES`` (HTTP 413)."""

    code = "UPLOAD_TOO_LARGE"
    default_message = "The file is too large."


#: HTTP statuses of this module's errors (collected by ``app.wiring.error_table``).
ERROR_STATUSES: ErrorStatuses = ((UploadTypeError, 415), (UploadTooLargeError, 413))


@dataclass(frozen=True)
class StoredFile:
    """A stored upload: ``storage_path`` is relative to the data directory."""

    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_path: str


def _sniff(head: bytes) -> tuple[str, str] | None:
    for content_type, (signature, extension) in SIGNATURES.items():
        if head.startswith(signature):
            return content_type, extension
    return None


def store_upload(stream: BinaryIO, filename: str | None, *, data_dir: Path, max_bytes: int,
                 field: str) -> StoredFile:
    """Check and store one uploaded file; return where it went and its checksum.

    Parameters
    ----------
    stream : binary file
        The upload, read from its current position in 1 MiB chunks (at most ``max_bytes + 1`` bytes).
    filename : str or None
        The client's file name, kept for display only (never used as a path).
    data_dir : Path
        ``SANLING_DATA_DIR``.
    max_bytes : int
        Size limit.
    field : str
        Form field name, reported in errors.

    Raises
    ------
    UploadTooLargeError
        More than ``max_bytes``.
    UploadTypeError
        Empty, or not a PDF, JPEG or PNG by its leading bytes.
    """
    target_dir = data_dir / UPLOAD_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd, temporary = tempfile.mkstemp(dir=target_dir, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLargeError(field=field, max_bytes=max_bytes)
                if len(head) < 16:
                    head = (head + chunk)[:16]
                digest.update(chunk)
                out.write(chunk)
        kind = _sniff(head)
        if size == 0 or kind is None:
            raise UploadTypeError(field=field, filename=filename, accepted=sorted(SIGNATURES))
        content_type, extension = kind
        sha256 = digest.hexdigest()
        relative = Path(UPLOAD_DIR) / sha256[:2] / f"{sha256}{extension}"
        final = data_dir / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, final)
    finally:
        Path(temporary).unlink(missing_ok=True)
    display_name = Path(filename or f"upload{extension}").name[:255]
    return StoredFile(display_name, content_type, size, sha256, relative.as_posix())
