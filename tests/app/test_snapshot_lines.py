"""A transformer's LV lines are found by a binary search in the snapshot, not by a scan of every line (R4.4).

The drawing of every design draws its source transformer's lines whole; finding them by comparing every line's
owner cost 3.7 ms a design on the 100k-transformer benchmark city (58 % of its design time).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.network.siting import NetworkSnapshot, _lines_by_owner


class _Grouped:
    """Just the grouping fields of a snapshot."""

    lines_of = NetworkSnapshot.lines_of

    def __init__(self, owners: np.ndarray) -> None:
        self.__dict__.update(_lines_by_owner(owners))


@given(st.lists(st.sampled_from(["T-1", "T-2", "T-10", "配变-3", ""]), max_size=60),
       st.sampled_from(["T-1", "T-2", "T-10", "配变-3", "", "T-9"]))
def test_lines_of_a_transformer_are_exactly_those_it_feeds_in_line_order(owners: list[str], asked: str) -> None:
    array = np.array(owners, dtype=object)
    expected = np.flatnonzero(array == asked) if len(array) else np.empty(0, dtype=np.intp)
    assert _Grouped(array).lines_of(asked).tolist() == expected.tolist()
