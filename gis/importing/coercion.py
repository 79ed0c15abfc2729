"""Value coercion of one batch, column by column (pyarrow/numpy/pandas): strings with value maps and choices,
numbers with units and ranges, timestamps to UTC; required fields and defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gis.importing.plan import _FieldPlan, _Plan, _Problems


def _as_string(column: pa.Array) -> pa.Array:
    """Cast any column to trimmed strings; integral floats lose their ``.0`` (DBF numeric ids)."""
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_floating(column.type):
        as_int = pc.cast(column, pa.int64(), safe=False)
        integral = pc.equal(pc.cast(as_int, pa.float64()), column)
        column = pc.if_else(integral, pc.cast(as_int, pa.string()), pc.cast(column, pa.string()))
    elif pa.types.is_boolean(column.type):
        column = pc.if_else(column, pa.scalar("true"), pa.scalar("false"))
    elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    column = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _apply_value_map(column: pa.Array, values: Mapping[str, str]) -> pa.Array:
    if not values:
        return column
    keys = pa.array(list(values.keys()), pa.string())
    index = pc.index_in(pc.utf8_lower(column), value_set=keys)
    mapped = pc.take(pa.array(list(values.values()), pa.string()), index)
    return pc.if_else(pc.is_null(index), column, mapped)


def _coerce_str(raw: pa.Array, plan: _FieldPlan, problems: _Problems) -> pa.Array:
    spec = plan.spec
    column = _apply_value_map(_as_string(raw), plan.values)
    present = ~np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool)
    if spec.choices:
        canonical = pa.array(list(spec.choices), pa.string())
        index = pc.index_in(pc.utf8_lower(column), value_set=pc.utf8_lower(canonical))
        unknown = present & np.asarray(pc.is_null(index).to_numpy(zero_copy_only=False), dtype=bool)
        problems.add(
            unknown, spec.name, "FIELD_INVALID", f"{spec.name} must be one of {', '.join(spec.choices)}", column
        )
        column = pc.if_else(pc.is_null(index), column, pc.take(canonical, index))
    if spec.max_length is not None:
        too_long = present & np.asarray(
            pc.fill_null(pc.greater(pc.utf8_length(column), spec.max_length), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        problems.add(
            too_long,
            spec.name,
            "FIELD_INVALID",
            f"{spec.name} is longer than {spec.max_length} characters",
            column,
        )
    return column


def _coerce_float(raw: pa.Array, plan: _FieldPlan, problems: _Problems) -> pa.Array:
    spec = plan.spec
    if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type):
        numbers = pc.cast(raw, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        present = ~np.asarray(pc.is_null(raw).to_numpy(zero_copy_only=False), dtype=bool)
        original: Any = numbers
        unreadable = np.zeros(len(raw), dtype=bool)
    else:
        text = _as_string(raw)
        original = text.to_numpy(zero_copy_only=False)
        present = ~np.asarray(pc.is_null(text).to_numpy(zero_copy_only=False), dtype=bool)
        numbers = pd.to_numeric(pd.Series(original, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        unreadable = present & np.isnan(numbers)
    numbers = numbers * plan.factor
    not_finite = present & ~unreadable & ~np.isfinite(numbers)
    problems.add(unreadable | not_finite, spec.name, "FIELD_INVALID", f"{spec.name} is not a number", original)
    checked = present & ~unreadable & ~not_finite
    if spec.min_value is not None:
        with np.errstate(invalid="ignore"):
            below = checked & ((numbers <= spec.min_value) if spec.min_exclusive else (numbers < spec.min_value))
        relation = ">" if spec.min_exclusive else "≥"
        problems.add(below, spec.name, "FIELD_INVALID", f"{spec.name} must be {relation} {spec.min_value:g}", original)
    numbers = np.where(present, numbers, np.nan)
    return pa.array(numbers, type=pa.float64(), mask=~present)


_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


def _parse_timestamps(text: pd.Series, naive_timezone: str) -> pd.Series:
    """Parse ISO-like strings to UTC; strings without an offset are local time in ``naive_timezone``."""
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    aware = text.str.contains(_TZ_SUFFIX, na=False)
    for is_aware in (True, False):
        subset = text[text.notna() & (aware == is_aware)]
        if subset.empty:
            continue
        values = pd.to_datetime(subset, errors="coerce", format="ISO8601", utc=is_aware)
        retry = values.isna()
        if retry.any():
            values[retry] = pd.to_datetime(subset[retry], errors="coerce", format="mixed", utc=is_aware)
        if not is_aware:
            values = values.dt.tz_localize(naive_timezone, ambiguous="NaT", nonexistent="NaT")
        parsed[subset.index] = values.dt.tz_convert("UTC")
    return parsed


def _coerce_datetime(raw: pa.Array, plan: _FieldPlan, naive_timezone: str, problems: _Problems) -> pa.Array:
    spec = plan.spec
    if pa.types.is_timestamp(raw.type) or pa.types.is_date(raw.type):
        series = pd.to_datetime(pd.Series(raw.to_pandas()))
        original: Any = series.astype(str).to_numpy()
        present = series.notna().to_numpy()
        if series.dt.tz is None:
            series = series.dt.tz_localize(naive_timezone, ambiguous="NaT", nonexistent="NaT")
        parsed = series.dt.tz_convert("UTC")
    else:
        text = pd.Series(_as_string(raw).to_numpy(zero_copy_only=False), dtype=object)
        original = text.to_numpy()
        present = text.notna().to_numpy()
        parsed = _parse_timestamps(text, naive_timezone)
    unreadable = present & parsed.isna().to_numpy()
    problems.add(unreadable, spec.name, "FIELD_INVALID", f"{spec.name} is not a date and time", original)
    naive_utc = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return pa.array(naive_utc, type=pa.timestamp("us", tz="UTC"), mask=~(present & ~unreadable))


def _coerce_field(batch: pa.RecordBatch, plan: _FieldPlan, main: _Plan, problems: _Problems) -> pa.Array:
    spec = plan.spec
    size = batch.num_rows
    if plan.column is not None:
        raw = batch.column(plan.column)
    elif plan.constant is not None:
        raw = pa.array([plan.constant] * size)
    else:
        raw = pa.nulls(size)
    errors_before = problems.errors.copy()
    if spec.kind == "float":
        column = _coerce_float(raw, plan, problems)
    elif spec.kind == "datetime":
        column = _coerce_datetime(raw, plan, main.naive_timezone, problems)
    else:
        column = _coerce_str(raw, plan, problems)
    invalid_here = problems.errors & ~errors_before
    if spec.required:
        missing = np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False), dtype=bool) & ~invalid_here
        problems.add(
            missing, spec.name, "FIELD_MISSING", f"{spec.name} is missing (source column {plan.column or 'none'})"
        )
    elif spec.default is not None:
        column = pc.fill_null(column, pa.scalar(spec.default, column.type))
    return column
