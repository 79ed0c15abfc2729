"""Reading GIS layer files (GeoPackage, Shapefile, GeoJSON, CSV) into WGS-84 GeoDataFrames.

This is the first, simple reader used to load the demo district; the full batch importer with
field mapping and per-row validation (issue 7) builds on it.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio

from gis.errors import SanlingError


class LayerFileError(SanlingError):
    """A GIS file could not be read."""

    code = "LAYER_FILE_UNREADABLE"
    default_message = "The GIS file could not be read."


def read_layer_file(path: Path, *, source_crs: str | None = None) -> gpd.GeoDataFrame:
    """Read ``path`` with pyogrio and return it in EPSG:4326 (lon/lat).

    Parameters
    ----------
    path
        Any format GDAL reads: ``.gpkg``, ``.shp``/``.zip``, ``.geojson``, ``.csv`` with lon/lat.
    source_crs
        CRS of the file when it declares none (CSV, Shapefile without ``.prj``).
    """
    if not path.exists():
        raise LayerFileError(f"File not found: {path}", path=str(path))
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as exc:
        raise LayerFileError(f"Cannot read {path}: {exc}", path=str(path)) from exc
    if frame.crs is None:
        if source_crs is None:
            raise LayerFileError(f"{path} declares no CRS; pass one (e.g. --crs EPSG:4545)", path=str(path))
        frame = frame.set_crs(source_crs)
    elif source_crs is not None:
        frame = frame.set_crs(source_crs, allow_override=True)
    if frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    return frame
