"""The typical designs ``typical_designs.toml``: assemblies per job class, geometry, drawing style."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from design_rules.catalogue.base import (
    JOB_CLASSES,
    Area,
    CatalogueFile,
    DataPath,
    FrozenModel,
    Surface,
    as_validated,
)

#: Names a typical-design line may use in its ``quantity`` table; ``design_rules.bom`` computes each one.
QUANTITY_DRIVERS: frozenset[str] = frozenset(
    {
        "job",
        "route_length_m",
        "poles",
        "spans",
        "straight_poles",
        "angle_poles",
        "terminal_poles",
        "conductors",
        "conductor_runs",
        "conductor_route_m",
        "strain_ends",
        "conductor_strain_end",
        "straight_pole_conductors",
        "angle_pole_conductors",
        "cable_ends",
        "crossings",
        "crossing_length_m",
        "pipe_m",
        "trench_verge_m",
        "trench_carriageway_m",
        "trenchless_m",
        "restoration_asphalt_m2",
        "restoration_concrete_m2",
        "restoration_paving_m2",
        "restoration_soil_m2",
        "route_markers",
        "mv_line_m",
    }
)

#: Job facts a typical-design ``when`` or ``requires`` table may test.
CONTEXT_KEYS: frozenset[str] = frozenset(
    {"job_class", "meter_wiring", "installation", "role", "phases", "area", "excavation", "access_kind",
     "upgrade_kind", "unit_kind"}
)

_WhenTable = dict[str, tuple[str | bool | int, ...]]

DrawnAs = Literal[
    "meter_box",
    "service_drop",
    "service_cable",
    "overhead",
    "cable",
    "pole",
    "branch_box",
    "pole_riser",
    "transformer_uprate",
    "new_transformer",
    "mv_line",
    "none",
]
"""What an assembly is drawn as on the 工程建设简图 (R4.4; CQ-32 annex 3; issue 17 item 5).

``meter_box``: the meter box on the outside wall; ``service_drop``, ``service_cable``, ``overhead``,
``cable``: the new route of that kind; ``pole``: the new poles along it; ``branch_box``: a new cable
branch box where the route leaves the road; ``pole_riser``: the cable riser and terminations at the
access pole; ``transformer_uprate``: the source transformer marked for uprating; ``new_transformer``: a
new unit by the load (新增配变) with its JP cabinet; ``mv_line``: its new 10 kV line; ``none``: no place on
the sketch (a lump sum). :mod:`design_rules.design` places each kind; the renderers draw each with a
legend entry.
"""

#: The drawn kinds that are a new item of their own (not ``none``).
DRAWN_KINDS: frozenset[str] = frozenset(DrawnAs.__args__) - {"none"}  # type: ignore[attr-defined]


def _check_context_keys(value: _WhenTable) -> _WhenTable:
    unknown = sorted(set(value) - CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"unknown job facts {unknown}; allowed: {sorted(CONTEXT_KEYS)}")
    return value


class MaterialSelector(FrozenModel):
    """How a typical-design line picks its material: by ``code``, by ``designation`` or by ``family``."""

    code: str | None = Field(default=None, pattern=r"^\d{9}$")
    designation: str | None = None
    family: str | None = None
    by: Literal["size_mm2", "design_current_a", "rated_kva"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MaterialSelector:
        given = [name for name in ("code", "designation", "family") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'code', 'designation', 'family'")
        if (self.family is None) != (self.by is None):
            raise ValueError("field 'by' goes with 'family' and only with it")
        return self


class AssemblyLine(FrozenModel):
    """One material line of an assembly: selector, linear quantity rule, optional condition."""

    material: MaterialSelector
    quantity: dict[str, float] = Field(min_length=1)
    when: _WhenTable = Field(default_factory=dict)
    basis: str = Field(min_length=1)

    @field_validator("quantity")
    @classmethod
    def _known_drivers(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - QUANTITY_DRIVERS)
        if unknown:
            raise ValueError(f"unknown quantity drivers {unknown}; allowed: {sorted(QUANTITY_DRIVERS)}")
        return value

    @field_validator("when")
    @classmethod
    def _when_keys(cls, value: _WhenTable) -> _WhenTable:
        return _check_context_keys(value)


class Assembly(FrozenModel):
    """A standard assembly (e.g. a pole set, a meter box set), where the sketch draws it, and when it applies."""

    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    drawn_as: DrawnAs
    when: _WhenTable = Field(default_factory=dict)
    lines: tuple[AssemblyLine, ...] = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("when")
    @classmethod
    def _when_keys(cls, value: _WhenTable) -> _WhenTable:
        return _check_context_keys(value)


class Design(FrozenModel):
    """The typical design of one job class: its assemblies and what the sizing must be."""

    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    assemblies: tuple[str, ...] = Field(min_length=1)
    requires: _WhenTable = Field(default_factory=dict)
    source: str = Field(min_length=1)

    @field_validator("requires")
    @classmethod
    def _requires_keys(cls, value: _WhenTable) -> _WhenTable:
        return _check_context_keys(value)


class RoadClassRule(FrozenModel):
    """Typical crossing length and surface of a road class (for trench, pipe and restoration)."""

    crossing_length_m: float = Field(gt=0)
    surface: Surface
    source: str = Field(min_length=1)
    verified: bool


class DesignGeometry(FrozenModel):
    """Geometric constants of the typical designs (DOMAIN §4.1–4.3)."""

    conductors_per_circuit: dict[Literal["1", "3"], int]
    terminal_poles: int = Field(ge=0)
    default_span_m: dict[Area, float]
    trench_width_m: float = Field(gt=0)
    pipe_extension_m: float = Field(ge=0)
    route_marker_interval_m: float = Field(gt=0)
    source: str = Field(min_length=1)
    verified: bool


class UnitRule(FrozenModel):
    """Rounding step of a unit: quantities are rounded up to a multiple of ``step``."""

    step: float = Field(gt=0)


class DrawingStyle(FrozenModel):
    """Conventions of the 工程建设简图 (CQ-32 annex 3) and default sizes."""

    existing_colour: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    new_colour: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    property_colour: str = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    property_dasharray: str = Field(min_length=1)
    font_family: tuple[str, ...] = Field(min_length=1)
    default_property_width_m: float = Field(gt=0)
    default_property_depth_m: float = Field(gt=0)
    canvas_width_px: float = Field(gt=300)
    canvas_height_px: float = Field(gt=300)
    source: str = Field(min_length=1)
    verified: bool


class DesignsMeta(FrozenModel):
    """Provenance of the typical-design file."""

    source: str = Field(min_length=1)
    verified: bool


class TypicalDesigns(FrozenModel):
    """The whole ``typical_designs.toml``: designs per job class, assemblies, geometry, drawing style."""

    meta: DesignsMeta
    geometry: DesignGeometry
    road_classes: dict[str, RoadClassRule] = Field(min_length=1)
    units: dict[str, UnitRule] = Field(min_length=1)
    designs: dict[str, Design]
    assemblies: dict[str, Assembly] = Field(min_length=1)
    drawing: DrawingStyle

    @model_validator(mode="after")
    def _references(self) -> TypicalDesigns:
        missing_jobs = sorted(set(JOB_CLASSES) - set(self.designs))
        if missing_jobs:
            raise ValueError(f"field 'designs' needs every job class; missing {missing_jobs}")
        for key, design in self.designs.items():
            unknown = sorted(set(design.assemblies) - set(self.assemblies))
            if unknown:
                raise ValueError(f"design {key!r}, field 'assemblies': unknown assemblies {unknown}")
        return self


def load_typical_designs(path: DataPath | None = None) -> TypicalDesigns:
    """Load and validate the typical designs (R4.3, R4.4; DOMAIN §4.2–4.3, §5.4; CQ-32 annex 3).

    Parameters
    ----------
    path : pathlib.Path or importlib.resources.abc.Traversable, optional
        A ``typical_designs.toml``; the packaged file (cached) when omitted.

    Returns
    -------
    TypicalDesigns

    Raises
    ------
    CatalogueInvalidError
        When the file is unreadable or fails validation.

    Examples
    --------
    >>> load_typical_designs().designs["overhead"].name_zh
    '立杆架线'
    """
    return _TYPICAL_DESIGNS.load(path)


_TYPICAL_DESIGNS = CatalogueFile("typical_designs.toml", TypicalDesigns, as_validated)
