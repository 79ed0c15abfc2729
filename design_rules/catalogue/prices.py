"""The material and price list ``prices.csv``: one row per material code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from pydantic import Field, field_validator, model_validator

from design_rules.catalogue.base import (
    CatalogueFile,
    CatalogueInvalidError,
    DataPath,
    FrozenModel,
)


class PriceRow(FrozenModel):
    """One material of ``prices.csv``: this project's material code, names, unit and unit price."""

    material_code: str = Field(pattern=r"^\d{9}$")
    family: str = Field(min_length=1)
    designation: str = Field(min_length=1)
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    unit_price_cny: Decimal = Field(ge=0, decimal_places=2)
    select_min: float | None = None
    select_max: float | None = None
    valid_from: date
    source: str = Field(min_length=1)

    @field_validator("select_min", "select_max", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _range(self) -> PriceRow:
        if (self.select_min is None) != (self.select_max is None):
            raise ValueError("fields 'select_min' and 'select_max' come together")
        if self.select_min is not None and self.select_max is not None and self.select_min >= self.select_max:
            raise ValueError("field 'select_min' must be below 'select_max'")
        return self


@dataclass(frozen=True)
class PriceList:
    """Read-only price list with lookups by code, designation and (family, value range).

    Examples
    --------
    >>> prices = load_price_list()
    >>> prices.by_designation("JKLYJ-1kV-120").unit
    'm'
    >>> prices.select("cross_arm", 185.0).designation
    '∠75×8×1500'
    """

    rows: Mapping[str, PriceRow]
    file_name: str = "prices.csv"

    def by_code(self, material_code: str) -> PriceRow:
        """Return the row of ``material_code``."""
        try:
            return self.rows[material_code]
        except KeyError:
            raise self._missing("material_code", material_code) from None

    def by_designation(self, designation: str) -> PriceRow:
        """Return the row whose ``designation`` is exactly ``designation``."""
        for row in self.rows.values():
            if row.designation == designation:
                return row
        raise self._missing("designation", designation)

    def select(self, family: str, value: float) -> PriceRow:
        """Return the row of ``family`` whose range ``select_min < value ≤ select_max`` holds."""
        for row in self.rows.values():
            if (
                row.family == family
                and row.select_min is not None
                and row.select_max is not None
                and row.select_min < value <= row.select_max
            ):
                return row
        raise self._missing("family", f"{family} for value {value:g}")

    def _missing(self, field: str, value: str) -> CatalogueInvalidError:
        return CatalogueInvalidError(
            f"{self.file_name}: no material with {field} {value!r}",
            file=self.file_name,
            entry=value,
            field=field,
            error="not found",
        )


def load_price_list(path: DataPath | None = None) -> PriceList:
    """Load and validate the material and price list (R4.3).

    Parameters
    ----------
    path : pathlib.Path or importlib.resources.abc.Traversable, optional
        A ``prices.csv``; the packaged file (cached) when omitted.

    Returns
    -------
    PriceList

    Raises
    ------
    CatalogueInvalidError
        When a row fails validation (``entry`` is ``"row N"``), a code or designation repeats, or two
        ranges of one family overlap.

    Examples
    --------
    >>> load_price_list().by_code("500201012").name_en
    'Concrete pole 190 mm top x 12 m'
    """
    return _PRICES.load(path)


def _price_list(rows: tuple[PriceRow, ...], file_name: str) -> PriceList:
    _check_ranges(rows, file_name)
    return PriceList(MappingProxyType({row.material_code: row for row in rows}), file_name)


def _check_ranges(rows: Iterable[PriceRow], file_name: str) -> None:
    by_family: dict[str, list[PriceRow]] = {}
    for row in rows:
        if row.select_min is not None:
            by_family.setdefault(row.family, []).append(row)
    for family, ranged in by_family.items():
        ranged.sort(key=lambda r: r.select_min)
        for low, high in pairwise(ranged):
            if high.select_min < low.select_max:
                raise CatalogueInvalidError(
                    f"{file_name}: entry {high.material_code!r}, field 'select_min': overlaps {low.material_code}",
                    file=file_name,
                    entry=high.material_code,
                    field="select_min",
                    error=f"range overlaps in family {family}",
                )


_PRICES = CatalogueFile("prices.csv", PriceRow, _price_list, unique=("material_code", "designation"))
