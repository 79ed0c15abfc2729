"""The import layers (R7.1): each layer's key, typed fields with units and limits, geometry type and references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from gis.errors import SanlingError

__all__ = [
    "LAYERS",
    "LAYER_ORDER",
    "UNIT_FACTORS",
    "FieldSpec",
    "LayerSpec",
    "LayerUnknownError",
    "Reference",
    "get_layer",
]

FieldKind = Literal["str", "float", "datetime"]
Severity = Literal["error", "warning"]


class LayerUnknownError(SanlingError):
    """The layer name is not one Sanling imports."""

    code = "LAYER_UNKNOWN"
    default_message = "Unknown layer."


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One attribute of a layer as the importer validates it.

    Parameters
    ----------
    name
        Column name in the table (and the default source column name).
    kind
        ``str``, ``float`` or ``datetime`` (stored in UTC).
    required
        A row without a value is rejected (``FIELD_MISSING``).
    default
        Value written when the row has none (only for optional fields).
    max_length
        Longest accepted string, the column's width.
    choices
        Allowed values (compared case-insensitively, stored as spelled here).
    min_value
        Smallest accepted number (inclusive unless ``min_exclusive``).
    unit
        Unit of the column (``kVA``, ``m``); a mapping may declare the source's unit of the same
        dimension and the importer converts (:data:`UNIT_FACTORS`).
    service_owned
        The service keeps this column itself and an import never sets it: a mapping that names it is
        refused, a source column of the same name is ignored (a ``FIELD_IGNORED`` warning in the report),
        new rows get ``default`` and stored rows keep their value (``transformers.reserved_kva``, the sum
        of the open capacity bookings; docs/import.md).
    """

    name: str
    kind: FieldKind = "str"
    required: bool = False
    default: Any = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    min_value: float | None = None
    min_exclusive: bool = False
    unit: str | None = None
    description: str = ""
    service_owned: bool = False


@dataclass(frozen=True, slots=True)
class Reference:
    """A field naming a row of another layer (``transformer_asset_id`` → ``transformers.asset_id``).

    An unknown value is reported as ``REFERENCE_UNKNOWN`` with ``severity``: ``error`` rejects the row,
    ``warning`` imports it and reports it.
    """

    field: str
    layer: str
    key: str
    severity: Severity = "error"


@dataclass(frozen=True)
class LayerSpec:
    """How one import layer maps to its table.

    ``key`` names the fields that identify a row (the asset id; for load readings the transformer and
    the reading time): re-importing a row with the same key updates it. ``geometry_type`` is the
    stored type in EPSG:4326, or ``None`` for attribute-only layers.
    """

    name: str
    table: str
    key: tuple[str, ...]
    geometry_type: str | None
    fields: tuple[FieldSpec, ...]
    references: tuple[Reference, ...] = ()
    description: str = ""
    field_by_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_by_name", MappingProxyType({spec.name: spec for spec in self.fields}))
        missing = [name for name in self.key if name not in self.field_by_name]
        if missing:
            raise ValueError(f"layer {self.name}: key fields {missing} are not fields")

    @property
    def field_names(self) -> tuple[str, ...]:
        """Attribute column names in table order (without ``id`` and ``geom``)."""
        return tuple(spec.name for spec in self.fields)

    @property
    def service_owned_fields(self) -> tuple[str, ...]:
        """Fields the service keeps itself and no import sets (:attr:`FieldSpec.service_owned`).

        >>> get_layer("transformers").service_owned_fields
        ('reserved_kva',)
        """
        return tuple(spec.name for spec in self.fields if spec.service_owned)


# Conversion factors from a source unit to the column's unit, per column unit. Keys are compared
# case-insensitively; "kW"/"MW" are deliberately absent: active power is not apparent power.
UNIT_FACTORS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "kVA": MappingProxyType({"VA": 1e-3, "kVA": 1.0, "MVA": 1e3}),
        "m": MappingProxyType({"mm": 1e-3, "cm": 1e-2, "m": 1.0, "km": 1e3}),
    }
)

_ID_LENGTH = 64
_NAME_LENGTH = 200
_KIND_LENGTH = 16
#: Area types of a grid area: plain urban/rural or a supply-area class 供电区域 A+…E (DOMAIN §1.1). The
#: vocabulary of the import; ``design_rules.profiles.AreaType`` names the same codes with their Chinese labels.
AREA_TYPES = ("urban", "rural", "A+", "A", "B", "C", "D", "E")

_LAYER_LIST: tuple[LayerSpec, ...] = (
    LayerSpec(
        name="grid_areas",
        table="grid_areas",
        key=("code",),
        geometry_type="MultiPolygon",
        description="Grid areas (网格) with their 1+1 team; polygons are stored as multipolygons.",
        fields=(
            FieldSpec("code", required=True, max_length=_ID_LENGTH, description="Grid area code."),
            FieldSpec("name", required=True, max_length=_NAME_LENGTH),
            FieldSpec(
                "area_type",
                default="urban",
                max_length=_KIND_LENGTH,
                choices=AREA_TYPES,
            ),
            FieldSpec("customer_manager", max_length=100),
            FieldSpec("project_manager", max_length=100),
            # the supply unit of the accountability reports (issue 14; CQ-32 annexes 1-2)
            FieldSpec("supply_company", max_length=_NAME_LENGTH, description="供电单位 (supply company)."),
            FieldSpec("supply_station", max_length=_NAME_LENGTH, description="供电所 (supply station)."),
            FieldSpec("admin_region", max_length=_NAME_LENGTH, description="服务片区（行政区域）."),
        ),
    ),
    LayerSpec(
        name="roads",
        table="roads",
        key=("asset_id",),
        geometry_type="LineString",
        description="Road centre lines with their class.",
        fields=(
            FieldSpec("asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("name", max_length=_NAME_LENGTH),
            FieldSpec(
                "road_class",
                required=True,
                max_length=_KIND_LENGTH,
                choices=("arterial", "secondary", "branch", "lane"),
            ),
            FieldSpec("width_m", kind="float", min_value=0.0, unit="m"),
        ),
    ),
    LayerSpec(
        name="no_overhead_zones",
        table="no_overhead_zones",
        key=("asset_id",),
        geometry_type="MultiPolygon",
        description="Zones where overhead lines are forbidden (禁止架空区).",
        fields=(
            FieldSpec("asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("name", max_length=_NAME_LENGTH),
        ),
    ),
    LayerSpec(
        name="transformers",
        table="transformers",
        key=("asset_id",),
        geometry_type="Point",
        description="Distribution transformers (配变) 10/0.4 kV.",
        fields=(
            FieldSpec("asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("name", default="", max_length=_NAME_LENGTH),
            FieldSpec("rated_kva", kind="float", required=True, min_value=0.0, min_exclusive=True, unit="kVA"),
            FieldSpec("peak_kva", kind="float", default=0.0, min_value=0.0, unit="kVA"),
            FieldSpec("peak_at", kind="datetime"),
            # the sum of the open capacity bookings (applications.reserved_kva): the service's own state
            FieldSpec("reserved_kva", kind="float", default=0.0, min_value=0.0, unit="kVA", service_owned=True,
                      description="Capacity booked by open applications; kept by the service, never imported."),
            FieldSpec("grid_area_code", max_length=_ID_LENGTH),
            FieldSpec(
                "status", default="in_service", max_length=_KIND_LENGTH, choices=("in_service", "planned", "retired")
            ),
        ),
        references=(Reference("grid_area_code", "grid_areas", "code", severity="warning"),),
    ),
    LayerSpec(
        name="lv_lines",
        table="lv_lines",
        key=("asset_id",),
        geometry_type="LineString",
        description="LV overhead lines and cables (低压线路/电缆).",
        fields=(
            FieldSpec("asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("transformer_asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("kind", required=True, max_length=_KIND_LENGTH, choices=("overhead", "cable")),
            FieldSpec("conductor_type", max_length=_ID_LENGTH),
        ),
        references=(Reference("transformer_asset_id", "transformers", "asset_id"),),
    ),
    LayerSpec(
        name="access_points",
        table="access_points",
        key=("asset_id",),
        geometry_type="Point",
        description="LV access points: poles (电杆) and cable branch boxes (电缆分支箱).",
        fields=(
            FieldSpec("asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("transformer_asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("kind", required=True, max_length=_KIND_LENGTH, choices=("pole", "branch_box")),
        ),
        references=(Reference("transformer_asset_id", "transformers", "asset_id"),),
    ),
    LayerSpec(
        name="load_readings",
        table="load_readings",
        key=("transformer_asset_id", "read_at"),
        geometry_type=None,
        description="Peak load readings; a transformer's peak_kva/peak_at follow its latest reading.",
        fields=(
            FieldSpec("transformer_asset_id", required=True, max_length=_ID_LENGTH),
            FieldSpec("read_at", kind="datetime", required=True),
            FieldSpec("peak_kva", kind="float", required=True, min_value=0.0, unit="kVA"),
        ),
        references=(Reference("transformer_asset_id", "transformers", "asset_id"),),
    ),
)

#: Every import layer by name (read-only).
LAYERS: Mapping[str, LayerSpec] = MappingProxyType({spec.name: spec for spec in _LAYER_LIST})
#: An order in which references are satisfied (lines, access points and readings name transformers).
LAYER_ORDER: tuple[str, ...] = tuple(spec.name for spec in _LAYER_LIST)


def get_layer(name: str) -> LayerSpec:
    """Return the :class:`LayerSpec` called ``name``.

    Raises
    ------
    LayerUnknownError
        For any other name; ``details`` lists the known layers.

    Examples
    --------
    >>> get_layer("transformers").key
    ('asset_id',)
    >>> get_layer("load_readings").geometry_type is None
    True
    """
    try:
        return LAYERS[name]
    except KeyError:
        raise LayerUnknownError(
            f"Unknown layer {name!r}; known: {', '.join(LAYERS)}.", layer=name, known=list(LAYERS)
        ) from None
