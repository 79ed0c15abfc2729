"""What every catalogue file shares: the vocabularies, the error, the frozen model base and the loader.

:class:`CatalogueFile` is the one loader of the package: a packaged data file, the schema it is
validated against (the whole TOML file, or one CSV row) and how the validated content becomes the
catalogue object; the packaged file is read once and cached.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gis.errors import SanlingError

Installation = Literal["overhead", "cable"]
Role = Literal["line", "service"]
Material = Literal["Cu", "Al"]
MeterWiring = Literal["single_phase", "three_phase_direct", "ct_connected"]
Medium = Literal["air", "ground"]
JobClass = Literal["direct_meter", "overhead", "underground_cable", "transformer_upgrade"]
Area = Literal["urban", "rural"]
Surface = Literal["asphalt", "concrete", "paving", "soil"]

JOB_CLASSES: tuple[str, ...] = ("direct_meter", "overhead", "underground_cable", "transformer_upgrade")

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


class FrozenModel(BaseModel):
    """Base of every catalogue model: immutable, and unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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


def as_validated(content: _M, file_name: str) -> _M:
    """``CatalogueFile.build`` for a file whose validated schema instance is the catalogue object."""
    return content
