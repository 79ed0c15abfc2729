"""Load model: threshold classes at their boundaries and agreement with the siting engine's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from design_rules.capacity import area_capacity, class_labels, classify_load_rate, load_table
from design_rules.profiles import get_profile
from gis.index import SourceIndex, TransformerSnapshot

THRESHOLDS = get_profile("chongqing-2019").load_thresholds


@pytest.mark.parametrize(("rate_pct", "label"), [
    (0.0, "<50"),
    (49.999, "<50"),
    (50.0, "50-70"),     # may start from exactly 50 % (≥)
    (69.999, "50-70"),
    (70.0, "70-80"),     # must start from exactly 70 % (≥)
    (80.0, "70-80"),     # exactly at the limit is still feasible (≤ 80 %)
    (80.0001, ">80"),
    (140.0, ">80"),
])
def test_threshold_class_boundaries(rate_pct: float, label: str) -> None:
    assert class_labels(THRESHOLDS)[int(classify_load_rate([rate_pct], THRESHOLDS)[0])] == label


def test_flags_follow_measured_and_projected_rates() -> None:
    # 60 % measured, 85 % after queued connections: may start, not must start, start in advance.
    table = load_table([100.0], [60.0], [25.0], THRESHOLDS)
    assert (table.may_start_project[0], table.must_start_project[0], table.start_in_advance[0]) == (True, False, True)
    assert (table.class_label(0), table.projected_label(0)) == ("50-70", ">80")
    assert table.spare_kva[0] == pytest.approx(-5.0)


def test_figures_equal_the_siting_engine_bit_for_bit() -> None:
    rng = np.random.default_rng(6)
    n = 2000
    rated = rng.choice([100.0, 200.0, 315.0, 400.0, 630.0], n)
    peak = np.round(rated * rng.uniform(0.05, 1.1, n), 1)
    reserved = np.round(rng.uniform(0, 40, n), 1)
    codes = rng.choice(["A", "B", "C"], n).astype(object)
    snapshot = TransformerSnapshot.from_lists([f"T{i}" for i in range(n)], rng.uniform(0, 1e4, n),
                                              rng.uniform(0, 1e4, n), rated, peak, reserved, codes)
    index = SourceIndex.build(snapshot)
    table = load_table(rated, peak, reserved, THRESHOLDS)
    for pos in range(0, n, 13):
        before, after = index.load_rates_pct(pos)
        assert (table.load_rate_pct[pos], table.projected_load_rate_pct[pos]) == (before, after)
    areas = area_capacity(codes, table.spare_kva, THRESHOLDS)
    expected = index.area_spare_kva(THRESHOLDS.max_load_after_pct)
    assert {code: a.allowable_kva for code, a in areas.items()} == dict(expected)
    assert all(a.precontrol == index.area_precontrol(code, 80.0, 160.0) for code, a in areas.items())
