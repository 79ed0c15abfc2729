"""The sizing rules ``sizing_rules.toml``: voltages, resistance, derating, methods and metering."""

from __future__ import annotations

from itertools import pairwise

from pydantic import Field, field_validator, model_validator

from design_rules.catalogue.base import (
    CatalogueFile,
    DataPath,
    FrozenModel,
    Installation,
    Material,
    Medium,
    MeterWiring,
    Role,
    as_validated,
)
from gis.errors import NotFoundError


class VoltageRules(FrozenModel):
    """Nominal voltages used by the design-current and voltage-drop formulas (DOMAIN §7.1)."""

    three_phase_line_kv: float = Field(gt=0)
    single_phase_kv: float = Field(gt=0)
    source: str = Field(min_length=1)
    verified: bool


class ResistanceRules(FrozenModel):
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


class TemperatureFactorTable(FrozenModel):
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


class DeratingFactor(FrozenModel):
    """A named multiplicative derating factor with its source."""

    name: str = Field(min_length=1)
    factor: float = Field(gt=0, le=1)
    source: str = Field(min_length=1)
    verified: bool


class InstallationMethod(FrozenModel):
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


class MeterType(FrozenModel):
    """An energy meter the design may specify (DOMAIN §5.1)."""

    designation: str = Field(min_length=1)
    wiring: MeterWiring
    rating: str = Field(min_length=1)
    basic_current_a: float = Field(gt=0)
    max_current_a: float = Field(gt=0)
    source: str = Field(min_length=1)
    verified: bool


class MeteringRules(FrozenModel):
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


class SizingRules(FrozenModel):
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


_SIZING_RULES = CatalogueFile("sizing_rules.toml", SizingRules, as_validated)
