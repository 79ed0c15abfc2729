"""Draw Sanling's favicon (三 in white on blue) as a 16 + 32 px ICO: ``python3 web/favicon.py`` (stdlib only).

Writes app/static/favicon.ico, served at /favicon.ico (app/api/docs_pages.py); committed like the vendored files.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

BLUE = (31, 95, 168, 255)
WHITE = (255, 255, 255, 255)
CLEAR = (0, 0, 0, 0)
TARGET = Path(__file__).resolve().parents[1] / "app" / "static" / "favicon.ico"


def pixel(x: int, y: int, size: int) -> tuple[int, int, int, int]:
    """The colour at (x, y): a rounded blue square with three white bars, the middle one shortest."""
    radius = size // 6
    cx, cy = min(max(x, radius), size - 1 - radius), min(max(y, radius), size - 1 - radius)
    if (x - cx) ** 2 + (y - cy) ** 2 > radius**2:
        return CLEAR
    unit = size / 16
    for top, inset in ((3, 3), (7, 4), (11, 2.5)):
        if top * unit <= y < (top + 2) * unit and inset * unit <= x < size - inset * unit:
            return WHITE
    return BLUE


def png(size: int) -> bytes:
    """A ``size`` x ``size`` RGBA PNG of the icon."""
    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y, size)) for x in range(size)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def ico(sizes: tuple[int, ...] = (16, 32)) -> bytes:
    """An ICO file holding one PNG image per size (the PNG-in-ICO form every current browser reads)."""
    images = [png(size) for size in sizes]
    offset = 6 + 16 * len(images)
    entries = b""
    for size, image in zip(sizes, images, strict=True):
        entries += struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
    return struct.pack("<HHH", 0, 1, len(images)) + entries + b"".join(images)


if __name__ == "__main__":
    TARGET.write_bytes(ico())
    print(f"{TARGET}: {TARGET.stat().st_size} bytes")
