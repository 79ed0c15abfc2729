"""Column mapping: how a source file's columns become a layer's fields (CLI pairs or a TOML/YAML/JSON file)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gis.importing.errors import ImportMappingError
from gis.layers import LayerSpec

__all__ = ["FieldMapping", "SourceField"]

_PSEUDO_X, _PSEUDO_Y = "x", "y"


@dataclass(frozen=True, slots=True)
class SourceField:
    """Where one layer field comes from: a source column, its unit or scale, and a value map.

    ``values`` maps source values (compared after trimming, case-insensitively) to layer values, e.g.
    ``{"电杆": "pole", "分支箱": "branch_box"}``; unmapped values pass through unchanged.
    """

    column: str
    unit: str | None = None
    scale: float | None = None
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class _FieldDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, description="Source column name.")
    unit: str | None = Field(default=None, description="Unit of the source column, e.g. MVA.")
    scale: float | None = Field(default=None, gt=0, description="Factor applied after the unit conversion.")
    values: dict[str, str] = Field(default_factory=dict, description="Source value → layer value.")


class _GeometryDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: str | None = Field(default=None, description="CSV column of x (easting or longitude).")
    y: str | None = Field(default=None, description="CSV column of y (northing or latitude).")


class _MappingDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: str | None = Field(default=None, description="Layer this mapping is for (checked).")
    source_layer: str | None = Field(default=None, description="Layer inside the file (GeoPackage, zip).")
    crs: str | None = Field(default=None, description="CRS of the coordinates, e.g. EPSG:4545.")
    encoding: str | None = Field(default=None, description="Text encoding of the attributes, e.g. GBK.")
    fields: dict[str, str | _FieldDoc] = Field(default_factory=dict, description="Layer field → source.")
    constants: dict[str, str | float | int | bool] = Field(default_factory=dict)
    geometry: _GeometryDoc = Field(default_factory=_GeometryDoc)


_PAIR_RE = re.compile(r"^\s*(?P<src>[^=\[\]]+?)\s*(?:\[(?P<unit>[^\]]+)\])?\s*=\s*(?P<dst>[^=]+?)\s*$")


@dataclass(frozen=True)
class FieldMapping:
    """How a source file's columns become a layer's fields.

    Fields not named here are taken from a source column of the same name (case-insensitive). The
    pseudo-fields ``x`` and ``y`` name CSV coordinate columns.

    Examples
    --------
    >>> m = FieldMapping.from_pairs(["sn_mva[MVA]=rated_kva", "name=asset_id"])
    >>> m.fields["rated_kva"]
    SourceField(column='sn_mva', unit='MVA', scale=None, values=mappingproxy({}))
    """

    fields: Mapping[str, SourceField] = field(default_factory=lambda: MappingProxyType({}))
    constants: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    x_column: str | None = None
    y_column: str | None = None
    layer: str | None = None
    source_layer: str | None = None
    crs: str | None = None
    encoding: str | None = None

    @classmethod
    def from_pairs(cls, pairs: Sequence[str]) -> FieldMapping:
        """Parse ``SRC=DST`` / ``SRC[UNIT]=DST`` pairs (the CLI's ``--map``); ``DST`` may be ``x`` or ``y``.

        Raises
        ------
        ImportMappingError
            For a pair that does not have that form.
        """
        fields: dict[str, SourceField] = {}
        x_column = y_column = None
        for pair in pairs:
            match = _PAIR_RE.match(pair)
            if not match:
                raise ImportMappingError(
                    f"Cannot read the mapping {pair!r}; write SRC=DST or SRC[UNIT]=DST.", field="map", value=pair
                )
            source, unit, target = match["src"], match["unit"], match["dst"]
            if target == _PSEUDO_X:
                x_column = source
            elif target == _PSEUDO_Y:
                y_column = source
            else:
                fields[target] = SourceField(column=source, unit=unit.strip() if unit else None)
        return cls(fields=MappingProxyType(fields), x_column=x_column, y_column=y_column)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, source: str = "mapping") -> FieldMapping:
        """Build a mapping from a parsed mapping file (see docs/import.md for the schema).

        Raises
        ------
        ImportMappingError
            When the document does not follow the schema; ``details`` names the file and the entry.
        """
        try:
            doc = _MappingDoc.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ImportMappingError(f"{source}: {where}: {first['msg']}", file=source, entry=where) from None
        fields = {
            target: SourceField(column=spec)
            if isinstance(spec, str)
            else SourceField(
                column=spec.column,
                unit=spec.unit,
                scale=spec.scale,
                values=MappingProxyType({_value_key(k): v for k, v in spec.values.items()}),
            )
            for target, spec in doc.fields.items()
        }
        return cls(
            fields=MappingProxyType(fields),
            constants=MappingProxyType(dict(doc.constants)),
            x_column=doc.geometry.x,
            y_column=doc.geometry.y,
            layer=doc.layer,
            source_layer=doc.source_layer,
            crs=doc.crs,
            encoding=doc.encoding,
        )

    @classmethod
    def from_file(cls, path: Path) -> FieldMapping:
        """Read a mapping file: TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON (``.json``).

        Raises
        ------
        ImportMappingError
            When the file cannot be read or parsed, or does not follow the schema.
        """
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
            suffix = Path(path).suffix.lower()
            if suffix == ".toml":
                document = tomllib.loads(text)
            elif suffix in (".yaml", ".yml"):
                document = yaml.safe_load(text) or {}
            elif suffix == ".json":
                document = json.loads(text)
            else:
                raise ImportMappingError(
                    f"{Path(path).name}: use a .toml, .yaml or .json mapping file.", file=Path(path).name
                )
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ImportMappingError(f"{Path(path).name}: {exc}", file=Path(path).name) from None
        if not isinstance(document, dict):
            raise ImportMappingError(f"{Path(path).name}: the mapping must be a table/object.", file=Path(path).name)
        return cls.from_document(document, source=Path(path).name)

    def check_targets(self, spec: LayerSpec) -> None:
        """Refuse fields and constants that ``spec`` does not have or that no import may set (before any row is read).

        Raises
        ------
        ImportMappingError
            A target that is not a field of the layer, or a service-owned one (``transformers.reserved_kva``, the
            sum of the open capacity bookings: docs/import.md).

        Examples
        --------
        >>> from gis.layers import get_layer
        >>> FieldMapping.from_pairs(["预留=reserved_kva"]).check_targets(get_layer("transformers"))
        Traceback (most recent call last):
        ...
        gis.importing.errors.ImportMappingError: reserved_kva of transformers is kept by the service (the sum of \
the open capacity bookings) and no import sets it; remove it from the mapping.
        """
        targets = set(self.fields) | set(self.constants)
        unknown = sorted(targets - set(spec.field_names))
        if unknown:
            raise ImportMappingError(
                f"{spec.name} has no field {', '.join(unknown)}; its fields are {', '.join(spec.field_names)}.",
                layer=spec.name,
                fields=unknown,
            )
        owned = sorted(targets & set(spec.service_owned_fields))
        if owned:
            raise ImportMappingError(
                f"{', '.join(owned)} of {spec.name} is kept by the service (the sum of the open capacity bookings) "
                "and no import sets it; remove it from the mapping.",
                layer=spec.name,
                fields=owned,
            )

    def merged(self, other: FieldMapping) -> FieldMapping:
        """Return this mapping with ``other``'s entries taking precedence (CLI pairs over a file)."""
        return FieldMapping(
            fields=MappingProxyType({**self.fields, **other.fields}),
            constants=MappingProxyType({**self.constants, **other.constants}),
            x_column=other.x_column or self.x_column,
            y_column=other.y_column or self.y_column,
            layer=other.layer or self.layer,
            source_layer=other.source_layer or self.source_layer,
            crs=other.crs or self.crs,
            encoding=other.encoding or self.encoding,
        )


def _value_key(value: Any) -> str:
    return str(value).strip().lower()
