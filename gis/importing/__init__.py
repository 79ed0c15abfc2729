"""Batch import of GIS layer files (R7); the implementation is in :mod:`gis.importing.pipeline` (being split)."""

from gis.importing.pipeline import *  # noqa: F403
from gis.importing.pipeline import ProgressCallback, _points_fast  # noqa: F401
from gis.importing.pipeline import __all__ as __all__
