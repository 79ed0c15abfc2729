"""Batch import of GIS layer files (R7): streamed reading, field mapping, units, reprojection, per-row validation.

The package re-exports what callers use; the parts are
:mod:`~gis.importing.errors` (the importer's errors),
:mod:`~gis.importing.mapping` (source columns → layer fields),
:mod:`~gis.importing.report` (options, progress, issues, the report and the sink protocol),
:mod:`~gis.importing.sources` (opening files, text encodings, Arrow batches),
:mod:`~gis.importing.plan` (what a batch is validated against, the problems it collects),
:mod:`~gis.importing.coercion` (attribute values), :mod:`~gis.importing.geometry` (CRS, WKB, geometry checks)
and :mod:`~gis.importing.pipeline` (:func:`import_layer`: validate, stage, write).
"""

from gis.importing.errors import (
    ImportEmptyReplaceError,
    ImportMappingError,
    ImportRejectedError,
    LayerFileError,
    SourceCrsError,
)
from gis.importing.geometry import _points_fast as _points_fast  # private; imported by tests/gis/test_importing.py
from gis.importing.geometry import encode_ewkb_points
from gis.importing.mapping import FieldMapping
from gis.importing.pipeline import import_layer
from gis.importing.report import ImportOptions, ImportProgress, ImportReport, Issue, ProgressCallback, WriteCounts

__all__ = [
    "FieldMapping",
    "ImportEmptyReplaceError",
    "ImportMappingError",
    "ImportOptions",
    "ImportProgress",
    "ImportRejectedError",
    "ImportReport",
    "Issue",
    "LayerFileError",
    "ProgressCallback",
    "SourceCrsError",
    "WriteCounts",
    "encode_ewkb_points",
    "import_layer",
]
