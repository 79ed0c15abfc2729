"""The importer's errors: unreadable file, invalid mapping, unknown CRS, empty replace, rejected rows.

Every one is a :class:`gis.errors.SanlingError` with a stable ``code`` and JSON-ready ``details``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gis.errors import InvalidInputError, SanlingError

if TYPE_CHECKING:
    from gis.importing.report import ImportReport

__all__ = [
    "ImportEmptyReplaceError",
    "ImportMappingError",
    "ImportRejectedError",
    "LayerFileError",
    "SourceCrsError",
]


class LayerFileError(InvalidInputError):
    """A GIS file could not be found, opened or read."""

    code = "LAYER_FILE_UNREADABLE"
    default_message = "The GIS file could not be read."


class ImportMappingError(InvalidInputError):
    """The field mapping names an unknown field, column or unit, or leaves a required field unmapped."""

    code = "IMPORT_MAPPING_INVALID"
    default_message = "The field mapping is invalid."


class SourceCrsError(InvalidInputError):
    """The source's coordinate reference system is missing or unknown."""

    code = "IMPORT_CRS_INVALID"
    default_message = "The coordinate reference system of the file is missing or unknown."


class ImportEmptyReplaceError(InvalidInputError):
    """``replace`` with no valid row would delete the whole layer; refused."""

    code = "IMPORT_EMPTY_REPLACE"
    default_message = "Refusing to replace a layer with an empty file."


class ImportRejectedError(SanlingError):
    """The file has invalid rows and ``skip_invalid`` was not given: nothing was imported.

    ``report`` is the full :class:`ImportReport`; ``details`` carries its summary.
    """

    code = "IMPORT_REJECTED"
    default_message = "The file has invalid rows; nothing was imported."

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        summary = report.to_dict(max_issues=20)
        super().__init__(
            f"{report.rows_rejected} of {report.rows_read} rows of {report.source} are invalid; nothing was "
            "imported (use skip_invalid to import the valid rows).",
            layer=report.layer,
            rows_read=report.rows_read,
            rows_rejected=report.rows_rejected,
            issue_counts=summary["issue_counts"],
            issues=summary["issues"],
        )
