"""Engineering catalogues as validated data: conductors, sizing rules, typical designs and prices."""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gis.errors import NotFoundError, SanlingError

Installation = Literal["overhead", "cable"]
Role = Literal["line", "service"]
Material = Literal["Cu", "Al"]
MeterWiring = Literal["single_phase", "three_phase_direct", "ct_connected"]
Medium = Literal["air", "ground"]
JobClass = Literal["direct_meter", "overhead", "underground_cable", "transformer_upgrade"]
Area = Literal["urban", "rural"]
Surface = Literal["asphalt", "concrete", "paving", "soil"]

JOB_CLASSES: tuple[str, ...] = ("direct_meter", "overhead", "underground_cable", "transformer_upgrade")

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
    }
)

#: Job facts a typical-design ``when`` or ``requires`` table may test.
CONTEXT_KEYS: frozenset[str] = frozenset(
    {"job_class", "meter_wiring", "installation", "role", "phases", "area", "excavation", "access_kind"}
)

_DATA_PACKAGE = "design_rules"
_KEYED_SECTIONS = frozenset(
    {"conductors", "methods", "temperature_factors", "road_classes", "units", "designs", "assemblies"}
)

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")
DataPath = Path | Traversable


class CatalogueInvalidError(SanlingError):
    """A catalogue data file is missing, unreadable or fails validation.

    ``details`` names the ``file``, the ``entry`` (the key of the faulty table, or the row) and the
    ``field``, and carries the validator's ``error`` text.
    """

    code = "CATALOGUE_INVALID"
    default_message = "A catalogue data file is invalid."


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------------------------- loading


def _data_file(name: str) -> Traversable:
    return resources.files(_DATA_PACKAGE) / "data" / name


def _file_name(path: DataPath) -> str:
    return getattr(path, "name", str(path))


def _read_text(path: DataPath) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueInvalidError(
            f"{_file_name(path)}: cannot be read ({exc})", file=_file_name(path), entry="", field="", error=str(exc)
        ) from None


def _read_toml(path: DataPath) -> dict[str, Any]:
    try:
        return tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueInvalidError(
            f"{_file_name(path)}: not valid TOML ({exc})", file=_file_name(path), entry="", field="", error=str(exc)
        ) from None


def _invalid(file_name: str, exc: ValidationError, entry_prefix: tuple[str, ...] = ()) -> CatalogueInvalidError:
    error = exc.errors()[0]
    loc = entry_prefix + tuple(str(part) for part in error["loc"])
    if len(loc) >= 2 and loc[0] in _KEYED_SECTIONS:
        entry, field_path = loc[1], loc[2:]
    elif loc:
        entry, field_path = loc[0], loc[1:]
    else:
        entry, field_path = "", ()
    field = ".".join(field_path)
    message = f"{file_name}: entry {entry!r}, field {field!r}: {error['msg']}"
    return CatalogueInvalidError(
        message, file=file_name, entry=entry, field=field, error=error["msg"], error_count=exc.error_count()
    )


def _validate(model: type[_M], data: Any, file_name: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(file_name, exc) from None


def _csv_rows(model: type[_M], text: str, file_name: str, unique: tuple[str, ...]) -> tuple[_M, ...]:
    """Validate each CSV row as ``model``; ``entry`` is ``"row N"``, N the line in the file (header is 1)."""
    rows: list[_M] = []
    seen: dict[str, set[Any]] = {field: set() for field in unique}
    for number, raw in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            row = model.model_validate(raw)
        except ValidationError as exc:
            raise _invalid(file_name, exc, (f"row {number}",)) from None
        for field in unique:
            value = getattr(row, field)
            if value in seen[field]:
                raise CatalogueInvalidError(
                    f"{file_name}: entry 'row {number}', field {field!r}: {value!r} repeats",
                    file=file_name,
                    entry=f"row {number}",
                    field=field,
                    error="duplicate",
                )
        for field in unique:
            seen[field].add(getattr(row, field))
        rows.append(row)
    return tuple(rows)


@dataclass(frozen=True)
class CatalogueFile(Generic[_M, _T]):
    """One catalogue data file and how it loads: read, validate against ``schema``, then ``build``.

    ``name`` is the packaged file under ``design_rules/data``; its suffix picks the format whatever
    path is given. A ``.toml`` file is validated as one ``schema`` instance; a ``.csv`` file row by
    row (``entry`` in errors is ``"row N"``, N its line), and a value of a ``unique`` field may not
    repeat. ``build`` receives the validated content (the instance, or the tuple of rows) and the
    file name, and returns what the ``load_*`` function returns. Every failure is a
    :class:`CatalogueInvalidError` naming file, entry and field.
    """

    name: str
    schema: type[_M]
    build: Callable[[Any, str], _T]
    unique: tuple[str, ...] = ()

    def load(self, path: DataPath | None = None) -> _T:
        """Load ``path``, or the packaged file (read once, then cached) when omitted."""
        if path is None:
            return _load_packaged(self)
        file_name = _file_name(path)
        content: Any
        if self.name.endswith(".csv"):
            content = _csv_rows(self.schema, _read_text(path), file_name, self.unique)
        else:
            content = _validate(self.schema, _read_toml(path), file_name)
        return self.build(content, file_name)


@cache
def _load_packaged(data_file: CatalogueFile[Any, _T]) -> _T:
    return data_file.load(_data_file(data_file.name))


def _as_validated(content: _M, file_name: str) -> _M:
    return content


# --------------------------------------------------------------------------------------------- conductors


class Conductor(_Frozen):
    """One conductor or cable type of ``conductors.toml``, keyed by its type designation.

    Resistances are per conductor at 20 °C (GB/T 3956); reactance is the positive-sequence value of
    the circuit; ampacities are catalogue figures at ``ampacity_*_base_c`` before derating.
    """

    designation: str = Field(min_length=1)
    kind: Literal["overhead_insulated", "bundled_service_drop", "armoured_cable"]
    installation: Installation
    roles: tuple[Role, ...] = Field(min_length=1)
    phases: tuple[Literal[1, 3], ...] = Field(min_length=1)
    material: Material
    cores: int = Field(ge=1, le=5)
    size_mm2: float = Field(gt=0)
    r20_ohm_per_km: float = Field(gt=0)
    x_ohm_per_km: float = Field(gt=0)
    ampacity_air_a: float = Field(gt=0)
    ampacity_air_base_c: float
    ampacity_ground_a: float | None = Field(default=None, gt=0)
    ampacity_ground_base_c: float | None = None
    source: str = Field(min_length=1)
    verified: bool
    unverified_fields: tuple[str, ...] = ()

    @field_validator("unverified_fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"names no field of a conductor: {unknown}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Conductor:
        if self.verified == bool(self.unverified_fields):
            raise ValueError("field 'verified' must be true exactly when 'unverified_fields' is empty")
        if (self.ampacity_ground_a is None) != (self.ampacity_ground_base_c is None):
            raise ValueError("fields 'ampacity_ground_a' and 'ampacity_ground_base_c' come together")
        if self.installation == "cable" and self.ampacity_ground_a is None:
            raise ValueError("field 'ampacity_ground_a' is required for a cable")
        return self

    def ampacity_a(self, medium: Medium) -> tuple[float, float]:
        """Return ``(catalogue ampacity in A, its base ambient in °C)`` for ``medium``.

        Examples
        --------
        >>> load_conductors()["JKLYJ-1kV-120"].ampacity_a("air")
        (320.0, 40.0)
        """
        if medium == "air":
            return self.ampacity_air_a, self.ampacity_air_base_c
        if self.ampacity_ground_a is None or self.ampacity_ground_base_c is None:
            raise NotFoundError(f"{self.designation} has no buried ampacity", designation=self.designation)
        return self.ampacity_ground_a, self.ampacity_ground_base_c


class _ConductorFile(_Frozen):
    conductors: dict[str, Conductor] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _designation_from_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("conductors"), dict):
            data = dict(data)
            data["conductors"] = {
                key: {"designation": key, **entry} if isinstance(entry, dict) else entry
                for key, entry in data["conductors"].items()
            }
        return data


@dataclass(frozen=True)
class ConductorCatalogue(Mapping[str, Conductor]):
    """Read-only mapping ``designation → Conductor`` loaded from ``conductors.toml``.

    Examples
    --------
    >>> cat = load_conductors()
    >>> cat["YJV22-0.6/1kV-4x95"].r20_ohm_per_km
    0.193
    >>> "JKLYJ-1kV-70" in cat
    True
    """

    conductors: Mapping[str, Conductor]
    file_name: str = "conductors.toml"

    def __getitem__(self, designation: str) -> Conductor:
        try:
            return self.conductors[designation]
        except KeyError:
            raise NotFoundError(
                f"conductor {designation!r} is not in {self.file_name}", designation=designation
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.conductors)

    def __len__(self) -> int:
        return len(self.conductors)


def load_conductors(path: DataPath | None = None) -> ConductorCatalogue:
    """Load and validate the conductor catalogue (R4.2; DOMAIN §3).

    Parameters
    ----------
    path : pathlib.Path or importlib.resources.abc.Traversable, optional
        A ``conductors.toml``; the packaged file (cached) when omitted.

    Returns
    -------
    ConductorCatalogue
        Immutable mapping keyed by type designation.

    Raises
    ------
    CatalogueInvalidError
        When the file is unreadable or an entry fails validation; ``details`` names file, entry, field.

    Examples
    --------
    >>> load_conductors()["JKLYJ-1kV-70"].ampacity_air_a
    215.0
    """
    return _CONDUCTORS.load(path)


def _conductor_catalogue(parsed: _ConductorFile, file_name: str) -> ConductorCatalogue:
    return ConductorCatalogue(MappingProxyType(dict(parsed.conductors)), file_name)


_CONDUCTORS = CatalogueFile("conductors.toml", _ConductorFile, _conductor_catalogue)


# --------------------------------------------------------------------------------------------- sizing rules


class VoltageRules(_Frozen):
    """Nominal voltages used by the design-current and voltage-drop formulas (DOMAIN §7.1)."""

    three_phase_line_kv: float = Field(gt=0)
    single_phase_kv: float = Field(gt=0)
    source: str = Field(min_length=1)
    verified: bool


class ResistanceRules(_Frozen):
    """Conductor temperature at which R is taken, and the temperature coefficients (DOMAIN §3.1)."""

    conductor_temperature_c: float = Field(ge=20, le=90)
    alpha_per_k: dict[Material, float]
    source: str = Field(min_length=1)
    verified: bool

    @field_validator("alpha_per_k")
    @classmethod
    def _both_materials(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {"Cu", "Al"} - set(value)
        if missing:
            raise ValueError(f"needs a coefficient for {sorted(missing)}")
        return value


class TemperatureFactorTable(_Frozen):
    """Ampacity correction factors against ambient temperature, relative to ``base_c``."""

    medium: Medium
    base_c: float
    points_c_factor: tuple[tuple[float, float], ...] = Field(min_length=2)
    source: str = Field(min_length=1)
    verified: bool

    @field_validator("points_c_factor")
    @classmethod
    def _ascending(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        temperatures = [t for t, _ in value]
        if temperatures != sorted(set(temperatures)):
            raise ValueError("temperatures must be strictly ascending")
        if any(f <= 0 for _, f in value):
            raise ValueError("factors must be positive")
        return value

    @model_validator(mode="after")
    def _unity_at_base(self) -> TemperatureFactorTable:
        if abs(self.factor_at(self.base_c) - 1.0) > 1e-9:
            raise ValueError("field 'points_c_factor' must give 1.0 at 'base_c'")
        return self

    def factor_at(self, temperature_c: float) -> float:
        """Interpolate the factor linearly; refuse temperatures outside the table.

        Examples
        --------
        >>> load_sizing_rules().temperature_table("air", 40.0).factor_at(42.5)
        0.97
        """
        points = self.points_c_factor
        if not points[0][0] <= temperature_c <= points[-1][0]:
            raise NotFoundError(
                f"{temperature_c} °C is outside the {self.medium} table ({points[0][0]}–{points[-1][0]} °C)",
                temperature_c=temperature_c,
            )
        for (t0, f0), (t1, f1) in pairwise(points):
            if t0 <= temperature_c <= t1:
                return round(f0 + (f1 - f0) * (temperature_c - t0) / (t1 - t0), 6)
        return points[-1][1]


class DeratingFactor(_Frozen):
    """A named multiplicative derating factor with its source."""

    name: str = Field(min_length=1)
    factor: float = Field(gt=0, le=1)
    source: str = Field(min_length=1)
    verified: bool


class InstallationMethod(_Frozen):
    """How a conductor is laid for one (installation, role): ampacity basis, derating, minimum size."""

    installation: Installation
    role: Role
    ampacity_medium: Medium
    design_temperature_c: float
    min_size_mm2: float = Field(default=0.0, ge=0)
    default_material: Material
    factors: tuple[DeratingFactor, ...] = ()
    source: str = Field(min_length=1)
    verified: bool


class MeterType(_Frozen):
    """An energy meter the design may specify (DOMAIN §5.1)."""

    designation: str = Field(min_length=1)
    wiring: MeterWiring
    rating: str = Field(min_length=1)
    basic_current_a: float = Field(gt=0)
    max_current_a: float = Field(gt=0)
    source: str = Field(min_length=1)
    verified: bool


class MeteringRules(_Frozen):
    """Direct/CT threshold, CT loading targets, standard CT primaries and meters (DOMAIN §5.1)."""

    direct_max_a: float = Field(gt=0)
    ct_target_load_fraction: float = Field(gt=0, le=1)
    ct_min_load_fraction: float = Field(gt=0, le=1)
    ct_secondary_a: int = Field(gt=0)
    ct_primaries_a: tuple[int, ...] = Field(min_length=1)
    meters: tuple[MeterType, ...] = Field(min_length=1)
    source: str = Field(min_length=1)
    verified: bool

    @model_validator(mode="after")
    def _consistent(self) -> MeteringRules:
        if self.ct_min_load_fraction >= self.ct_target_load_fraction:
            raise ValueError("field 'ct_min_load_fraction' must be below 'ct_target_load_fraction'")
        if list(self.ct_primaries_a) != sorted(set(self.ct_primaries_a)):
            raise ValueError("field 'ct_primaries_a' must be strictly ascending")
        missing = {"single_phase", "three_phase_direct", "ct_connected"} - {m.wiring for m in self.meters}
        if missing:
            raise ValueError(f"field 'meters' needs a meter for every wiring; missing {sorted(missing)}")
        return self


class SizingRules(_Frozen):
    """Everything ``design_rules.sizing`` needs besides the conductor catalogue (``sizing_rules.toml``)."""

    voltage: VoltageRules
    resistance: ResistanceRules
    temperature_factors: dict[str, TemperatureFactorTable] = Field(min_length=1)
    methods: dict[str, InstallationMethod] = Field(min_length=1)
    metering: MeteringRules

    @model_validator(mode="after")
    def _unique_lookups(self) -> SizingRules:
        pairs = [(m.installation, m.role) for m in self.methods.values()]
        if len(pairs) != len(set(pairs)):
            raise ValueError("field 'methods' has two methods for the same (installation, role)")
        bases = [(t.medium, t.base_c) for t in self.temperature_factors.values()]
        if len(bases) != len(set(bases)):
            raise ValueError("field 'temperature_factors' has two tables for the same (medium, base_c)")
        return self

    def method(self, installation: Installation, role: Role) -> InstallationMethod:
        """Return the installation method for ``(installation, role)``.

        Examples
        --------
        >>> load_sizing_rules().method("overhead", "line").min_size_mm2
        70.0
        """
        for method in self.methods.values():
            if method.installation == installation and method.role == role:
                return method
        raise NotFoundError(f"no sizing method for {installation}/{role}", installation=installation, role=role)

    def temperature_table(self, medium: Medium, base_c: float) -> TemperatureFactorTable:
        """Return the correction table for catalogue figures of ``medium`` quoted at ``base_c``.

        Examples
        --------
        >>> load_sizing_rules().temperature_table("ground", 25.0).factor_at(30.0)
        0.96
        """
        for table in self.temperature_factors.values():
            if table.medium == medium and table.base_c == base_c:
                return table
        raise NotFoundError(f"no temperature table for {medium} at base {base_c} °C", medium=medium, base_c=base_c)


def load_sizing_rules(path: DataPath | None = None) -> SizingRules:
    """Load and validate the sizing rules (R4.2; DOMAIN §2, §3.6, §5.1, §7).

    Parameters
    ----------
    path : pathlib.Path or importlib.resources.abc.Traversable, optional
        A ``sizing_rules.toml``; the packaged file (cached) when omitted.

    Returns
    -------
    SizingRules

    Raises
    ------
    CatalogueInvalidError
        When the file is unreadable or fails validation.

    Examples
    --------
    >>> load_sizing_rules().metering.direct_max_a
    60.0
    """
    return _SIZING_RULES.load(path)


_SIZING_RULES = CatalogueFile("sizing_rules.toml", SizingRules, _as_validated)


# --------------------------------------------------------------------------------------------- typical designs

_WhenTable = dict[str, tuple[str | bool | int, ...]]


def _check_context_keys(value: _WhenTable) -> _WhenTable:
    unknown = sorted(set(value) - CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"unknown job facts {unknown}; allowed: {sorted(CONTEXT_KEYS)}")
    return value


class MaterialSelector(_Frozen):
    """How a typical-design line picks its material: by ``code``, by ``designation`` or by ``family``."""

    code: str | None = Field(default=None, pattern=r"^\d{9}$")
    designation: str | None = None
    family: str | None = None
    by: Literal["size_mm2", "design_current_a"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MaterialSelector:
        given = [name for name in ("code", "designation", "family") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'code', 'designation', 'family'")
        if (self.family is None) != (self.by is None):
            raise ValueError("field 'by' goes with 'family' and only with it")
        return self


class AssemblyLine(_Frozen):
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


class Assembly(_Frozen):
    """A standard assembly (e.g. a pole set, a meter box set) and the condition under which it applies."""

    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    when: _WhenTable = Field(default_factory=dict)
    lines: tuple[AssemblyLine, ...] = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("when")
    @classmethod
    def _when_keys(cls, value: _WhenTable) -> _WhenTable:
        return _check_context_keys(value)


class Design(_Frozen):
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


class RoadClassRule(_Frozen):
    """Typical crossing length and surface of a road class (for trench, pipe and restoration)."""

    crossing_length_m: float = Field(gt=0)
    surface: Surface
    source: str = Field(min_length=1)
    verified: bool


class DesignGeometry(_Frozen):
    """Geometric constants of the typical designs (DOMAIN §4.1–4.3)."""

    conductors_per_circuit: dict[Literal["1", "3"], int]
    terminal_poles: int = Field(ge=0)
    default_span_m: dict[Area, float]
    trench_width_m: float = Field(gt=0)
    pipe_extension_m: float = Field(ge=0)
    route_marker_interval_m: float = Field(gt=0)
    source: str = Field(min_length=1)
    verified: bool


class UnitRule(_Frozen):
    """Rounding step of a unit: quantities are rounded up to a multiple of ``step``."""

    step: float = Field(gt=0)


class DrawingStyle(_Frozen):
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


class DesignsMeta(_Frozen):
    """Provenance of the typical-design file."""

    source: str = Field(min_length=1)
    verified: bool


class TypicalDesigns(_Frozen):
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


_TYPICAL_DESIGNS = CatalogueFile("typical_designs.toml", TypicalDesigns, _as_validated)


# --------------------------------------------------------------------------------------------- prices


class PriceRow(_Frozen):
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
