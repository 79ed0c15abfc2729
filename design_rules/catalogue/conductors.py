"""The conductor catalogue ``conductors.toml``: LV conductor and cable types by designation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from design_rules.catalogue.base import (
    CatalogueFile,
    DataPath,
    FrozenModel,
    Installation,
    Material,
    Medium,
    Role,
)
from gis.errors import NotFoundError


class Conductor(FrozenModel):
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


class _ConductorFile(FrozenModel):
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
