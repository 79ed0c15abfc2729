"""Uploaded files (application documents R1.2, stage photos R5): type and size checks, SHA-256, stored under DATA_DIR.

Files are stored content-addressed, ``DATA_DIR/uploads/<sha256[:2]>/<sha256>.<ext>``, never in the database;
the row that refers to a file keeps its name, type, size and checksum. Writing the same bytes twice stores
one file, and a file written by a request whose transaction later rolled back is harmless.

A file's type is recognised by its leading bytes and then its structure is checked, so ``%PDF-`` followed by
HTML is not a PDF (issue 13 item 10): a PDF needs its header, a ``startxref`` offset that points at a cross-
reference table or stream, and the ``%%EOF`` trailer at its end; a JPEG its markers from SOI to a frame and a
scan, then an EOI (anything after the EOI is allowed: phones append a video to "motion photos"); a PNG its
signature, an IHDR first and chunks with good CRCs up to IEND. Pixels and page content are not decoded.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import tempfile
import zlib
from collections.abc import Callable
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


Bytes = bytes | mmap.mmap
_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
_PDF_TRAILER = re.compile(rb"startxref[ \t\r\n]+([0-9]{1,12})[ \t\r\n]+%%EOF[ \t\r\n\x00]*\Z")
_PDF_XREF = re.compile(rb"[ \t\r\n]*(?:xref|[0-9]+[ \t\r\n]+[0-9]+[ \t\r\n]+obj)")
#: Readers look for the trailer in the file's last kilobyte (PDF 32000-1 §7.5.5); a little slack.
_PDF_TAIL_BYTES = 2048
_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def pdf_problem(data: Bytes) -> str | None:
    """Why ``data`` is not a well-formed PDF, or None.

    >>> pdf_problem(b"%PDF-1.7\\n<html></html>")
    'no startxref and %%EOF trailer at the end'
    """
    if not _PDF_HEADER.match(data):
        return "no %PDF-n.n header"
    tail = data[-_PDF_TAIL_BYTES:]
    trailer = _PDF_TRAILER.search(tail)
    if trailer is None:
        return "no startxref and %%EOF trailer at the end"
    offset = int(trailer.group(1))
    if offset >= len(data) or not _PDF_XREF.match(data[offset:offset + 64]):
        return "startxref does not point at a cross-reference table or stream"
    return None


def jpeg_problem(data: Bytes) -> str | None:
    """Why ``data`` is not a well-formed JPEG (markers from SOI through a frame and a scan to an EOI), or None."""
    size = len(data)
    if data[:2] != b"\xff\xd8":
        return "no SOI marker"
    position, frame = 2, False
    while position + 4 <= size:
        if data[position] != 0xFF:
            return f"no marker at byte {position}"
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x00, 0xD8, 0xD9):
            return f"marker {marker:02X} before the scan"
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if length < 2 or position + 2 + length > size:
            return f"segment {marker:02X} at byte {position} runs past the end"
        frame = frame or marker in _JPEG_FRAMES
        if marker == 0xDA:  # start of scan: entropy-coded data, then (more scans and) EOI
            if not frame:
                return "a scan before any frame header"
            return None if data.find(b"\xff\xd9", position + 2 + length) != -1 else "no EOI marker"
        position += 2 + length
    return "no scan"


def png_problem(data: Bytes) -> str | None:
    """Why ``data`` is not a well-formed PNG (IHDR first, chunks with good CRCs, an IDAT, IEND), or None."""
    size, position, first, image = len(data), 8, True, False
    view = memoryview(data)
    try:
        while position + 12 <= size:
            length = int.from_bytes(data[position:position + 4], "big")
            kind = bytes(data[position + 4:position + 8])
            end = position + 12 + length
            if end > size:
                return f"chunk {kind!r} runs past the end"
            if first and (kind != b"IHDR" or length != 13):
                return "the first chunk is not IHDR"
            if zlib.crc32(view[position + 4:position + 8 + length]) != int.from_bytes(data[end - 4:end], "big"):
                return f"chunk {kind!r} has a bad CRC"
            first, image = False, image or kind == b"IDAT"
            if kind == b"IEND":
                return None if image else "no IDAT chunk"
            position = end
        return "no IEND chunk"
    finally:
        view.release()


#: The structure check of each accepted type.
STRUCTURE_CHECKS: dict[str, Callable[[Bytes], str | None]] = {
    "application/pdf": pdf_problem, "image/jpeg": jpeg_problem, "image/png": png_problem,
}


def _structure_problem(path: str, content_type: str) -> str | None:
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return STRUCTURE_CHECKS[content_type](data)


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
        Empty, not a PDF, JPEG or PNG by its leading bytes, or not well formed as that type
        (``details["problem"]`` says why).
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
        problem = _structure_problem(temporary, content_type)
        if problem is not None:
            raise UploadTypeError(f"The file starts like {content_type} but is not one: {problem}.", field=field,
                                  filename=filename, accepted=sorted(SIGNATURES), problem=problem)
        sha256 = digest.hexdigest()
        relative = Path(UPLOAD_DIR) / sha256[:2] / f"{sha256}{extension}"
        final = data_dir / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, final)
    finally:
        Path(temporary).unlink(missing_ok=True)
    display_name = Path(filename or f"upload{extension}").name[:255]
    return StoredFile(display_name, content_type, size, sha256, relative.as_posix())
