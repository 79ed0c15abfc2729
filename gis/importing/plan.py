"""What one batch is validated against (the import's :class:`_Plan`, one :class:`_FieldPlan` per field) and
what it collects (:class:`_Problems`, row masks that become :class:`~gis.importing.report.Issue` objects)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyproj

from gis.importing.report import Issue, Severity
from gis.layers import FieldSpec, LayerSpec


@dataclass(frozen=True)
class _FieldPlan:
    spec: FieldSpec
    column: str | None = None
    constant: Any = None
    factor: float = 1.0
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def provided(self) -> bool:
        return self.column is not None or self.constant is not None


@dataclass(frozen=True)
class _Plan:
    spec: LayerSpec
    fields: tuple[_FieldPlan, ...]
    transformer: pyproj.Transformer | None
    source_is_projected: bool
    service_area_wgs84: tuple[float, float, float, float] | None
    naive_timezone: str
    geometry_column: str | None
    #: Issues of the whole file (``row`` 0), found while planning: e.g. a service-owned column ignored.
    file_issues: tuple[Issue, ...] = ()

    @property
    def provided_fields(self) -> tuple[str, ...]:
        return tuple(plan.spec.name for plan in self.fields if plan.provided)


class _Problems:
    """Row problems of one batch, gathered as (mask, field, code, severity, message, values) groups."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.errors = np.zeros(size, dtype=bool)
        self.warnings = np.zeros(size, dtype=bool)
        self.groups: list[tuple[npt.NDArray[np.bool_], str, str, Severity, str | Sequence[str], Any]] = []

    def add(
        self,
        mask: npt.NDArray[np.bool_],
        field_name: str,
        code: str,
        message: str | Sequence[str],
        values: Any = None,
        severity: Severity = "error",
    ) -> None:
        """Record ``code`` on every row where ``mask`` is set (``message`` may be per row)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        (self.errors if severity == "error" else self.warnings).__ior__(mask)
        self.groups.append((mask, field_name, code, severity, message, values))

    def issues(self, first_row: int, keys: Sequence[Any]) -> Iterator[Issue]:
        """Yield the issues in row order within each group."""
        for mask, field_name, code, severity, message, values in self.groups:
            for index in np.flatnonzero(mask):
                text = message if isinstance(message, str) else message[index]
                value = None if values is None else values[index]
                if isinstance(value, pa.Scalar):  # Arrow columns are read only where there is an issue
                    value = value.as_py()
                key = keys[index]
                yield Issue(
                    row=first_row + int(index),
                    key=None if key is None else str(key),
                    field=field_name,
                    code=code,
                    severity=severity,
                    message=text,
                    value=None if value is None else _short(value),
                )


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
