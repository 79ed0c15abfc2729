"""In-memory source index: transformers, the access points they feed, and nearest-feasible search (R2.2).

:mod:`.snapshots` holds the read-only network snapshots, :mod:`.grid` the uniform bucket grid,
:mod:`.limits` the feasibility test and the per-transformer limit tables, and :mod:`.source_index`
the :class:`SourceIndex` queries. Import from ``gis.index``: the names below are the package's interface.
"""

from gis.index.limits import added_kva_limit, fits_after_connection
from gis.index.snapshots import (
    ACCESS_POINT_KINDS,
    LINE_SEGMENT_KIND,
    AccessPointSnapshot,
    LineSegmentSnapshot,
    TransformerSnapshot,
    derive_cable_access,
)
from gis.index.source_index import AccessHit, Neighbour, SourceIndex

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
    "derive_cable_access",
    "fits_after_connection",
]
