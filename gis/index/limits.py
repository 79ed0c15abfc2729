"""The feasibility test of R2.3 and the per-transformer ``added_kva`` limit tables the searches scan.

:func:`fits_after_connection` is the one test every caller uses; :func:`added_kva_limit` turns it
into an upper limit per transformer with a doubtful band, and ``_Packed`` lays those limits out with
the coordinates in grid order, one contiguous run of memory per grid row.
"""

from __future__ import annotations

from array import array

import numpy as np
import numpy.typing as npt

from gis.index.grid import _Grid

__all__ = ["added_kva_limit", "fits_after_connection"]

FloatArray = npt.NDArray[np.float64]


def fits_after_connection(*, committed_kva: float, added_kva: float, rated_kva: float,
                          max_load_after_pct: float) -> bool:
    """The feasibility test of R2.3: ``(committed_kva + added_kva) / rated_kva × 100 ≤ max_load_after_pct``.

    ``committed_kva = peak_kva + reserved_kva``. Evaluated in this order and float64, so every caller (the
    index, a booking's re-check on the locked row) decides a boundary case the same way.

    Examples
    --------
    >>> fits_after_connection(committed_kva=300.0, added_kva=20.0, rated_kva=400.0, max_load_after_pct=80.0)
    True
    >>> fits_after_connection(committed_kva=310.0, added_kva=20.0, rated_kva=400.0, max_load_after_pct=80.0)
    False
    """
    return (committed_kva + added_kva) / rated_kva * 100.0 <= max_load_after_pct


def added_kva_limit(
    rated_kva: FloatArray, committed_kva: FloatArray, max_load_after_pct: float
) -> tuple[FloatArray, float]:
    """Upper bound of the ``added_kva`` each transformer can take, and the width of the doubtful band.

    The feasibility test (architecture.md, R2.3) is ``(committed_kva + added_kva) / rated_kva × 100
    <= max_load_after_pct`` with ``committed_kva = peak_kva + reserved_kva``. The algebraic limit
    ``rated × pct / 100 − committed`` differs from the float64 boundary of that test by a few ulps,
    so this returns ``upper`` (the limit plus a margin) and ``band_kva``:
    ``added_kva > upper`` never passes the test, ``added_kva <= upper − band_kva`` always does, and
    the searches evaluate the test itself only inside the band.

    Examples
    --------
    >>> upper, band_kva = added_kva_limit(np.array([100.0]), np.array([30.0]), 80.0)
    >>> bool(abs(float(upper[0]) - 50.0) < 1e-6), band_kva < 1e-6
    (True, True)
    """
    capacity_kva = rated_kva * (max_load_after_pct / 100.0)
    # rounding of the test and of the limit is a few ulps of these magnitudes; 1e-12 leaves a wide margin
    margin_kva = 1e-12 * (float(np.max(capacity_kva + committed_kva, initial=0.0)) + 1.0)
    return capacity_kva - committed_kva + margin_kva, 2.0 * margin_kva


class _Packed:
    """Per-transformer ``added_kva`` upper limit, x_m, y_m and position, interleaved in grid order.

    One contiguous run of memory per grid row keeps a query to a handful of cache lines; this, not
    arithmetic, dominates the cost of a query over a million transformers (docs/siting.md).
    """

    def __init__(self, upper_kva: FloatArray, band_kva: float, max_load_after_pct: float, grid: _Grid) -> None:
        table = np.column_stack([upper_kva, grid.x_np, grid.y_np, grid.order.astype(np.float64)])
        self.values = array("d", np.ascontiguousarray(table).tobytes())
        self.view = memoryview(self.values)
        self.upper_kva: FloatArray = upper_kva
        self.band_kva = band_kva
        self.max_load_after_pct = max_load_after_pct

