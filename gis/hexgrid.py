"""Pointy-top hexagonal cells in the local metric plane, for aggregated public disclosure (R6.2)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from shapely import Polygon

__all__ = ["HEX_NEIGHBOURS", "hex_cell", "hex_cells", "hex_centre_m", "hex_polygon_m", "hex_ring"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_SQRT3 = math.sqrt(3.0)
#: Axial offsets ``(dq, dr)`` of the six neighbours of a cell, counter-clockwise from the east.
HEX_NEIGHBOURS: tuple[tuple[int, int], ...] = ((1, 0), (1, -1), (0, -1), (-1, 0), (-1, 1), (0, 1))


def hex_cells(x_m: npt.ArrayLike, y_m: npt.ArrayLike, size_m: float) -> tuple[IntArray, IntArray]:
    """Return the axial cell ``(q, r)`` of each local point, for hexagons of circumradius ``size_m``.

    Cell ``(0, 0)`` is centred on the CRS origin; the nearest cell centre wins (cube rounding), so
    points on an edge go to one of the two cells consistently.

    Examples
    --------
    >>> q, r = hex_cells([0.0, 900.0, 0.0], [0.0, 0.0, 760.0], 500.0)
    >>> q.tolist(), r.tolist()
    ([0, 1, -1], [0, 0, 1])
    """
    x = np.asarray(x_m, dtype=np.float64) / size_m
    y = np.asarray(y_m, dtype=np.float64) / size_m
    qf = _SQRT3 / 3.0 * x - y / 3.0
    rf = 2.0 / 3.0 * y
    sf = -qf - rf
    q, r, s = np.rint(qf), np.rint(rf), np.rint(sf)
    dq, dr, ds = np.abs(q - qf), np.abs(r - rf), np.abs(s - sf)
    fix_q = (dq > dr) & (dq > ds)
    fix_r = ~fix_q & (dr > ds)
    q = np.where(fix_q, -r - s, q)
    r = np.where(fix_r, -q - s, r)
    return q.astype(np.int64), r.astype(np.int64)


def hex_cell(x_m: float, y_m: float, size_m: float) -> tuple[int, int]:
    """Return the axial cell ``(q, r)`` of one local point (see :func:`hex_cells`)."""
    q, r = hex_cells([x_m], [y_m], size_m)
    return int(q[0]), int(r[0])


def hex_centre_m(q: int, r: int, size_m: float) -> tuple[float, float]:
    """Return the local ``(x_m, y_m)`` centre of cell ``(q, r)``.

    Examples
    --------
    >>> hex_centre_m(1, 0, 500.0) == (500.0 * 3 ** 0.5, 0.0)
    True
    """
    return size_m * _SQRT3 * (q + r / 2.0), size_m * 1.5 * r


def hex_polygon_m(q: int, r: int, size_m: float) -> Polygon:
    """Return cell ``(q, r)`` as a local polygon (six corners, the first at 30° from the east).

    Examples
    --------
    >>> round(hex_polygon_m(0, 0, 100.0).area)
    25981
    """
    cx, cy = hex_centre_m(q, r, size_m)
    angles = np.radians(30.0 + 60.0 * np.arange(6))
    return Polygon(np.column_stack((cx + size_m * np.cos(angles), cy + size_m * np.sin(angles))))


def hex_ring(q: int, r: int) -> list[tuple[int, int]]:
    """Return the cell and its six neighbours, the cell first.

    Examples
    --------
    >>> hex_ring(0, 0)[:3]
    [(0, 0), (1, 0), (1, -1)]
    """
    return [(q, r)] + [(q + dq, r + dr) for dq, dr in HEX_NEIGHBOURS]
