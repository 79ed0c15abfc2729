"""The uniform bucket grid over the transformer points that :class:`~gis.index.SourceIndex` searches ring by ring.

Cells are sorted row-major, so each grid row of a block of cells is one contiguous run of positions
(docs/siting.md "Source index").
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Mean number of transformers per grid cell; measured best between 1 and 2 (docs/siting.md).
_TARGET_PER_CELL = 1.5
# Slack in metres on the provable-nearest bound, larger than any rounding of cell assignment.
_BOUND_EPS_M = 1e-6


class _Grid:
    """Uniform bucket grid over the transformer points, cells sorted row-major (see docs/siting.md)."""

    def __init__(self, x_m: FloatArray, y_m: FloatArray) -> None:
        n = len(x_m)
        self.n = n
        if n == 0:
            self.x0_m = self.y0_m = 0.0
            self.cell_m = 1.0
            self.ncol = self.nrow = 1
        else:
            self.x0_m = float(x_m.min())
            self.y0_m = float(y_m.min())
            width_m = float(x_m.max()) - self.x0_m
            height_m = float(y_m.max()) - self.y0_m
            cell_m = math.sqrt(max(width_m * height_m, 1.0) * _TARGET_PER_CELL / n)
            # never more than ~4 cells per point, whatever the shape of the extent
            cell_m = max(cell_m, (width_m + height_m) / (4.0 * n + 4.0), 1e-3)
            self.cell_m = cell_m
            self.ncol = int(width_m / cell_m) + 1
            self.nrow = int(height_m / cell_m) + 1
        col = np.clip(np.floor((x_m - self.x0_m) / self.cell_m).astype(np.int64), 0, self.ncol - 1)
        row = np.clip(np.floor((y_m - self.y0_m) / self.cell_m).astype(np.int64), 0, self.nrow - 1)
        key = row * self.ncol + col
        order = np.argsort(key, kind="stable")
        self.order: IntArray = order
        ptr = np.searchsorted(key[order], np.arange(self.ncol * self.nrow + 1, dtype=np.int64))
        self.ptr_np: IntArray = ptr.astype(np.int64)
        self.ptr = array("q", self.ptr_np.tobytes())
        self.x_np: FloatArray = x_m[order]
        self.y_np: FloatArray = y_m[order]

    def cell_of(self, x_m: float, y_m: float) -> tuple[int, int]:
        return math.floor((x_m - self.x0_m) / self.cell_m), math.floor((y_m - self.y0_m) / self.cell_m)

    def bound_m(self, x_m: float, y_m: float, col: int, row: int, ring: int) -> float:
        """Distance below which every point outside the block of ``ring`` around (col, row) lies farther."""
        bound = math.inf
        if col - ring > 0:
            bound = min(bound, x_m - (self.x0_m + (col - ring) * self.cell_m))
        if col + ring < self.ncol - 1:
            bound = min(bound, self.x0_m + (col + ring + 1) * self.cell_m - x_m)
        if row - ring > 0:
            bound = min(bound, y_m - (self.y0_m + (row - ring) * self.cell_m))
        if row + ring < self.nrow - 1:
            bound = min(bound, self.y0_m + (row + ring + 1) * self.cell_m - y_m)
        return bound - _BOUND_EPS_M

    def shell_ranges(self, col: int, row: int, inner: int, outer: int) -> list[tuple[int, int]]:
        """Ranges of sorted positions of the cells with ``inner < Chebyshev distance <= outer``.

        Each grid row of the shell is one or two contiguous runs because cells are sorted row-major;
        ``inner = -1`` gives the whole block.
        """
        ncol, ptr = self.ncol, self.ptr
        ranges: list[tuple[int, int]] = []
        c_lo = max(col - outer, 0)
        c_hi = min(col + outer, ncol - 1)
        if c_lo > c_hi:
            return ranges
        for r in range(max(row - outer, 0), min(row + outer, self.nrow - 1) + 1):
            base = r * ncol
            if inner < 0 or abs(r - row) > inner:
                ranges.append((ptr[base + c_lo], ptr[base + c_hi + 1]))
                continue
            left_hi = min(col - inner - 1, ncol - 1)
            if c_lo <= left_hi:
                ranges.append((ptr[base + c_lo], ptr[base + left_hi + 1]))
            right_lo = max(col + inner + 1, 0)
            if right_lo <= c_hi:
                ranges.append((ptr[base + right_lo], ptr[base + c_hi + 1]))
        return ranges

    def block_positions(self, col: int, row: int, ring: int) -> IntArray:
        """Sorted positions of all points in the square block of half-width ``ring`` cells."""
        c_lo = max(col - ring, 0)
        c_hi = min(col + ring, self.ncol - 1)
        r_lo = max(row - ring, 0)
        r_hi = min(row + ring, self.nrow - 1)
        if c_lo > c_hi or r_lo > r_hi:
            return np.zeros(0, dtype=np.int64)
        base = np.arange(r_lo, r_hi + 1, dtype=np.int64) * self.ncol
        starts = self.ptr_np[base + c_lo]
        lengths = self.ptr_np[base + c_hi + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return offsets + np.arange(total, dtype=np.int64)

