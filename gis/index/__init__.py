"""In-memory source index (R2.2): temporary package shell while ``gis/index.py`` is split (issue 11).

The module moved unchanged to :mod:`gis.index.source_index`; its names are re-exported here so
``from gis.index import ...`` keeps working.
"""

from gis.index.source_index import (
    ACCESS_POINT_KINDS,
    LINE_SEGMENT_KIND,
    AccessHit,
    AccessPointSnapshot,
    LineSegmentSnapshot,
    Neighbour,
    SourceIndex,
    TransformerSnapshot,
    added_kva_limit,
    fits_after_connection,
)

__all__ = [
    "ACCESS_POINT_KINDS",
    "LINE_SEGMENT_KIND",
    "AccessHit",
    "AccessPointSnapshot",
    "LineSegmentSnapshot",
    "Neighbour",
    "SourceIndex",
    "TransformerSnapshot",
    "added_kva_limit",
    "fits_after_connection",
]
