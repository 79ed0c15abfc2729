"""Transformer load model (负荷率、可开放容量) and grid-area pre-control (预管控), R2.3 and R6.1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from design_rules.profiles import LoadThresholds

__all__ = [
    "AreaCapacity",
    "LoadTable",
    "area_capacity",
    "class_labels",
    "classify_load_rate",
    "load_table",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ClassArray = npt.NDArray[np.int8]


def class_labels(thresholds: LoadThresholds) -> tuple[str, str, str, str]:
    """Return the four threshold-class labels of a profile, lowest first.

    With the default thresholds these are the labels of docs/architecture.md.

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> class_labels(get_profile("chongqing-2019").load_thresholds)
    ('<50', '50-70', '70-80', '>80')
    """
    may, must, limit = thresholds.may_start_pct, thresholds.must_start_pct, thresholds.max_load_after_pct
    return f"<{may:g}", f"{may:g}-{must:g}", f"{must:g}-{limit:g}", f">{limit:g}"


def classify_load_rate(load_rate_pct: npt.ArrayLike, thresholds: LoadThresholds) -> ClassArray:
    """Return the threshold class index (0 to 3, see :func:`class_labels`) of each load rate.

    ``0``: below ``may_start_pct``; ``1``: from ``may_start_pct`` up to but excluding ``must_start_pct``;
    ``2``: from ``must_start_pct`` up to and including ``max_load_after_pct`` (a source at exactly the limit
    is still feasible, R2.3); ``3``: above ``max_load_after_pct``. R2.3; BS 4.1.4.

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> classify_load_rate([49.9, 50.0, 70.0, 80.0, 80.01], get_profile("chongqing-2019").load_thresholds).tolist()
    [0, 1, 2, 2, 3]
    """
    rate = np.asarray(load_rate_pct, dtype=np.float64)
    index = (rate >= thresholds.may_start_pct).astype(np.int8)
    index += rate >= thresholds.must_start_pct
    index += rate > thresholds.max_load_after_pct
    return index


@dataclass(frozen=True)
class LoadTable:
    """Load figures of a set of transformers, as parallel read-only arrays (one entry per transformer).

    Attributes
    ----------
    load_rate_pct
        ``peak_kva / rated_kva × 100``: the measured peak load rate the 50/70 % thresholds refer to.
    projected_load_rate_pct
        ``(peak_kva + reserved_kva) / rated_kva × 100``: the rate once the queued connections (capacity
        reserved by accepted applications) are connected.
    spare_kva
        ``rated_kva × max_load_after_pct / 100 − peak_kva − reserved_kva``: what can still be connected
        before the 80 % limit (negative when already beyond it). Identical to the siting engine's formula
        (docs/architecture.md "Siting", ``gis.index.SourceIndex``).
    threshold_class, projected_class
        Class index (0–3) of the measured and of the projected load rate; ``labels`` names them.
    may_start_project, must_start_project
        Measured rate ≥ ``may_start_pct`` (立项) / ≥ ``must_start_pct`` (立项并出库).
    start_in_advance
        Projected rate > ``max_load_after_pct``: start the reinforcement project ahead of demand.
    """

    load_rate_pct: FloatArray
    projected_load_rate_pct: FloatArray
    spare_kva: FloatArray
    threshold_class: ClassArray
    projected_class: ClassArray
    may_start_project: BoolArray
    must_start_project: BoolArray
    start_in_advance: BoolArray
    labels: tuple[str, str, str, str]

    def __len__(self) -> int:
        return int(self.load_rate_pct.shape[0])

    def class_label(self, index: int) -> str:
        """Return the label of the measured threshold class of transformer ``index``."""
        return self.labels[int(self.threshold_class[index])]

    def projected_label(self, index: int) -> str:
        """Return the label of the projected threshold class of transformer ``index``."""
        return self.labels[int(self.projected_class[index])]


def _frozen(values: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    values.setflags(write=False)
    return values


def load_table(
    rated_kva: npt.ArrayLike, peak_kva: npt.ArrayLike, reserved_kva: npt.ArrayLike, thresholds: LoadThresholds
) -> LoadTable:
    """Compute load rates, spare capacity and threshold classes (R2.3; BS 4.1.1/4.1.4).

    Parameters
    ----------
    rated_kva, peak_kva, reserved_kva
        Rating, latest measured peak and capacity reserved by queued connections, kVA, per transformer.
        Ratings must be positive (the importer refuses others).
    thresholds
        The policy profile's ``load_thresholds``.

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> t = load_table([100.0, 200.0], [75.0, 80.0], [10.0, 90.0], get_profile("chongqing-2019").load_thresholds)
    >>> t.load_rate_pct.tolist(), t.projected_load_rate_pct.tolist(), t.spare_kva.tolist()
    ([75.0, 40.0], [85.0, 85.0], [-5.0, -10.0])
    >>> [t.class_label(i) for i in range(2)], [t.projected_label(i) for i in range(2)], t.start_in_advance.tolist()
    (['70-80', '<50'], ['>80', '>80'], [True, True])
    """
    rated = np.asarray(rated_kva, dtype=np.float64)
    peak = np.asarray(peak_kva, dtype=np.float64)
    reserved = np.asarray(reserved_kva, dtype=np.float64)
    # Same operations in the same order as gis.index.SourceIndex (load_rates_pct, area_spare_kva),
    # so the planner's figures and the siting engine's agree to the last bit.
    load_rate = peak / rated * 100.0
    projected = (peak + reserved + 0.0) / rated * 100.0
    spare = rated * thresholds.max_load_after_pct / 100.0 - peak - reserved
    return LoadTable(
        load_rate_pct=_frozen(load_rate),
        projected_load_rate_pct=_frozen(projected),
        spare_kva=_frozen(spare),
        threshold_class=_frozen(classify_load_rate(load_rate, thresholds)),
        projected_class=_frozen(classify_load_rate(projected, thresholds)),
        may_start_project=_frozen(load_rate >= thresholds.may_start_pct),
        must_start_project=_frozen(load_rate >= thresholds.must_start_pct),
        start_in_advance=_frozen(projected > thresholds.max_load_after_pct),
        labels=class_labels(thresholds),
    )


@dataclass(frozen=True, slots=True)
class AreaCapacity:
    """Total allowable connection capacity of one grid area (网格可开放容量) and its pre-control flag."""

    grid_area_code: str
    allowable_kva: float
    transformer_count: int
    precontrol: bool


def area_capacity(
    grid_area_codes: Sequence[str | None] | npt.NDArray[np.object_],
    spare_kva: npt.ArrayLike,
    thresholds: LoadThresholds,
    known_areas: Sequence[str] = (),
) -> Mapping[str, AreaCapacity]:
    """Sum spare capacity per grid area and flag pre-control (R2.3: allowable < ``area_precontrol_kva``).

    Parameters
    ----------
    grid_area_codes
        The grid area of each in-service transformer (None: not assigned, left out).
    spare_kva
        :attr:`LoadTable.spare_kva` of the same transformers; overloaded ones count negatively, as in
        ``gis.index.SourceIndex.area_spare_kva``.
    thresholds
        The profile's ``load_thresholds`` (``area_precontrol_kva``, 160 kVA by default).
    known_areas
        Grid areas to report even without transformers (allowable 0 kVA, so pre-controlled).

    Examples
    --------
    >>> from design_rules.profiles import get_profile
    >>> areas = area_capacity(["A", "A", None], [100.0, 50.0, 9.0], get_profile("chongqing-2019").load_thresholds,
    ...                       known_areas=["A", "B"])
    >>> areas["A"], areas["B"].precontrol
    (AreaCapacity(grid_area_code='A', allowable_kva=150.0, transformer_count=2, precontrol=True), True)
    """
    spare = np.asarray(spare_kva, dtype=np.float64)
    codes: dict[str, int] = {}
    group = np.fromiter((-1 if code is None else codes.setdefault(str(code), len(codes)) for code in grid_area_codes),
                        dtype=np.int64, count=spare.shape[0])
    kept = group >= 0
    sums = np.bincount(group[kept], weights=spare[kept], minlength=len(codes))
    counts = np.bincount(group[kept], minlength=len(codes))
    table = {
        code: AreaCapacity(code, float(sums[i]), int(counts[i]), bool(sums[i] < thresholds.area_precontrol_kva))
        for code, i in codes.items()
    }
    for code in known_areas:
        table.setdefault(code, AreaCapacity(code, 0.0, 0, thresholds.area_precontrol_kva > 0.0))
    return MappingProxyType(dict(sorted(table.items())))
