"""Policy profiles (政策口径): loading and validating the packaged data files, and the profile registry.

The vocabulary enums live in :mod:`design_rules.profile_vocabulary` and the schema of a file in
:mod:`design_rules.profile_schema`; both are re-exported here, so ``design_rules.profiles`` stays
the one place to import any of them from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from design_rules.profile_schema import (
    CASE_BY_CASE,
    BookingRelease,
    CapacityLimits,
    ConnectFirst,
    DatedCapacityLimit,
    DocumentRef,
    EligibilityRules,
    Equivalence,
    Excavation,
    Exclusion,
    Factor,
    JobDeadline,
    LoadThresholds,
    NewTransformerRules,
    OneAddressOneAccount,
    OverheadSpans,
    Pct,
    Profile,
    PublicDisclosure,
    ReapplicationBlock,
    RequiredDocuments,
    ScheduleRules,
    ServiceDrop,
    Source,
    StageEvidence,
    SupplyRadius,
    SupplyVoltage,
    SurveyRules,
    VoltageDrop,
)
from design_rules.profile_vocabulary import (
    AreaType,
    Category,
    CountFrom,
    DayKind,
    DocumentKind,
    HighReliabilityKind,
    JobClass,
    MunicipalFacilityKind,
    RoadClass,
    StepCode,
    UrbanRural,
)
from gis.errors import NotFoundError, SanlingError

__all__ = [
    "CASE_BY_CASE",
    "PROFILES",
    "AreaType",
    "BookingRelease",
    "CapacityLimits",
    "Category",
    "ConnectFirst",
    "CountFrom",
    "DatedCapacityLimit",
    "DayKind",
    "DocumentKind",
    "DocumentRef",
    "EligibilityRules",
    "Equivalence",
    "Excavation",
    "Exclusion",
    "Factor",
    "HighReliabilityKind",
    "JobClass",
    "JobDeadline",
    "LoadThresholds",
    "MunicipalFacilityKind",
    "NewTransformerRules",
    "OneAddressOneAccount",
    "OverheadSpans",
    "Pct",
    "Profile",
    "ProfileError",
    "PublicDisclosure",
    "ReapplicationBlock",
    "RequiredDocuments",
    "RoadClass",
    "ScheduleRules",
    "ServiceDrop",
    "Source",
    "StageEvidence",
    "StepCode",
    "SupplyRadius",
    "SupplyVoltage",
    "SurveyRules",
    "UnknownProfileError",
    "UrbanRural",
    "VoltageDrop",
    "get_profile",
    "load_profile_text",
    "load_profiles",
    "profile_ids",
]

PROFILE_PACKAGE = "design_rules"
PROFILE_DIR = ("data", "profiles")


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class ProfileError(SanlingError):
    """A policy-profile file is malformed; ``details`` name the file, the field and the reason."""

    code = "PROFILE_INVALID"
    default_message = "A policy profile file is invalid."


class UnknownProfileError(NotFoundError):
    """No policy profile has the requested id; ``details['known']`` lists the valid ids."""

    code = "PROFILE_UNKNOWN"
    default_message = "No policy profile has this id."


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _field_path(loc: Iterable[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def load_profile_text(text: str, filename: str) -> Profile:
    """Parse and validate one profile file.

    Parameters
    ----------
    text : str
        TOML text of the file.
    filename : str
        File name (``chongqing-2019.toml``); its stem must equal ``profile_id``.

    Returns
    -------
    Profile

    Raises
    ------
    ProfileError
        ``PROFILE_INVALID``; ``details`` hold ``file`` and ``errors`` (a list of
        ``{field, reason}``), and the message repeats them.

    Examples
    --------
    >>> load_profile_text("profile_id = 3", "x.toml")
    Traceback (most recent call last):
    ...
    design_rules.profiles.ProfileError: x.toml: profile_id: Input should be a valid string; ...
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        errors = [{"field": "<toml>", "reason": str(exc)}]
        raise ProfileError(f"{filename}: not valid TOML: {exc}", file=filename, errors=errors) from exc
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": _field_path(e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise ProfileError(f"{filename}: {summary}", file=filename, errors=errors) from exc
    stem = filename.rsplit("/", 1)[-1].removesuffix(".toml")
    if profile.profile_id != stem:
        reason = f"profile_id {profile.profile_id!r} must equal the file name stem {stem!r}"
        raise ProfileError(
            f"{filename}: profile_id: {reason}",
            file=filename,
            errors=[{"field": "profile_id", "reason": reason}],
        )
    return profile


def load_profiles() -> Mapping[str, Profile]:
    """Load every ``design_rules/data/profiles/*.toml`` into a new read-only mapping.

    Returns
    -------
    Mapping[str, Profile]
        A ``MappingProxyType`` keyed by ``profile_id``, in file-name order.

    Raises
    ------
    ProfileError
        If any file is invalid (the first invalid file is reported).
    """
    folder = resources.files(PROFILE_PACKAGE).joinpath(*PROFILE_DIR)
    profiles: dict[str, Profile] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            profile = load_profile_text(entry.read_text(encoding="utf-8"), f"data/profiles/{entry.name}")
            profiles[profile.profile_id] = profile
    return MappingProxyType(profiles)


PROFILES: Mapping[str, Profile]
"""Registry of the packaged profiles keyed by ``profile_id`` (read-only; built on first access)."""


@cache
def _registry() -> Mapping[str, Profile]:
    return load_profiles()


def __getattr__(name: str) -> Any:
    # PROFILES is built on first access, not at import time (STYLE 4 and 6).
    if name == "PROFILES":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def profile_ids() -> tuple[str, ...]:
    """Return the ids of the packaged profiles, sorted.

    Examples
    --------
    >>> profile_ids()
    ('baoshan-2021', 'chongqing-2019', 'shanghai-2019', 'wanzhou-2021')
    """
    return tuple(sorted(_registry()))


def get_profile(profile_id: str) -> Profile:
    """Return the packaged profile ``profile_id``.

    Raises
    ------
    UnknownProfileError
        ``PROFILE_UNKNOWN`` if there is no such profile; ``details['known']`` lists the ids.

    Examples
    --------
    >>> get_profile("baoshan-2021").schedule.day_kind
    <DayKind.WORKING: 'working'>
    >>> get_profile("beijing-2018")
    Traceback (most recent call last):
    ...
    design_rules.profiles.UnknownProfileError: Unknown policy profile 'beijing-2018'.
    """
    registry = _registry()
    try:
        return registry[profile_id]
    except KeyError:
        raise UnknownProfileError(
            f"Unknown policy profile {profile_id!r}.", profile_id=profile_id, known=sorted(registry)
        ) from None
