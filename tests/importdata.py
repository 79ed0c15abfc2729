"""Test data for the importer, generated at test time: small layers in every format, GBK Shapefiles, sinks."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely

from gis.importing import WriteCounts
from gis.layers import LayerSpec

#: A service area around the test transformers (Chongqing, lon 106.3–106.8, lat 29.4–29.8).
TEST_AREA_WGS84 = (106.0, 29.0, 107.0, 30.0)
#: Coordinates compared after a round trip through a projected CRS agree to this many degrees (~1 mm).
COORD_TOL_DEG = 1e-8
#: CGCS2000 / 3-degree Gauss-Krüger CM 108°E, and the same zone (36) with the zone number in x.
GK_CM_108E = "EPSG:4545"
GK_ZONE_36 = "EPSG:4524"
#: ArcGIS's .prj text of CGCS2000 3-degree GK zone 36, as Chinese surveying offices ship it.
ESRI_PRJ_GK_ZONE_36 = (
    'PROJCS["CGCS2000_3_Degree_GK_Zone_36",GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",'
    'DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],'
    'UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",36500000.0],'
    'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",108.0],PARAMETER["Scale_Factor",1.0],'
    'PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
)


def transformer_frame(count: int = 5, *, start: int = 1, crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    """``count`` transformers on a small grid in Chongqing with Chinese names, in ``crs``."""
    rows = range(start, start + count)
    frame = gpd.GeoDataFrame(
        {
            "asset_id": [f"T-{i:04d}" for i in rows],
            "name": [f"测试配变{i}号" for i in rows],
            "rated_kva": [[200.0, 315.0, 400.0, 630.0][i % 4] for i in rows],
            "peak_kva": [50.0 + i for i in rows],
            "status": ["in_service"] * count,
        },
        geometry=[shapely.Point(106.5 + 0.001 * i, 29.5 + 0.0005 * i) for i in rows],
        crs="EPSG:4326",
    )
    return frame.to_crs(crs) if crs != "EPSG:4326" else frame


def write_layer(frame: gpd.GeoDataFrame | pd.DataFrame, folder: Path, fmt: str, *, name: str = "layer",
                encoding: str | None = None, keep_cpg: bool = True) -> Path:
    """Write ``frame`` as ``fmt`` (``gpkg``, ``zip`` (Shapefile), ``shp``, ``geojson``, ``csv``) into ``folder``.

    The CSV variant carries ``lon``/``lat`` columns (WGS-84) instead of a geometry.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "gpkg":
        path = folder / f"{name}.gpkg"
        pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG")
    elif fmt == "geojson":
        path = folder / f"{name}.geojson"
        pyogrio.write_dataframe(frame, path, driver="GeoJSON")
    elif fmt in ("shp", "zip"):
        shp_dir = folder / f"{name}_shp"
        shp_dir.mkdir(exist_ok=True)
        path = shp_dir / f"{name}.shp"
        pyogrio.write_dataframe(frame, path, driver="ESRI Shapefile", encoding=encoding)
        if not keep_cpg:
            path.with_suffix(".cpg").unlink(missing_ok=True)
        if fmt == "zip":
            path = folder / f"{name}.zip"
            with zipfile.ZipFile(path, "w") as archive:
                for member in sorted(shp_dir.iterdir()):
                    archive.write(member, f"{name}/{member.name}")
    elif fmt == "csv":
        path = folder / f"{name}.csv"
        table = pd.DataFrame(frame.drop(columns="geometry")) if "geometry" in frame else pd.DataFrame(frame)
        if "geometry" in frame:
            wgs84 = frame.to_crs("EPSG:4326")
            table["lon"], table["lat"] = wgs84.geometry.x, wgs84.geometry.y
        table.to_csv(path, index=False, encoding=encoding or "utf-8")
    else:
        raise ValueError(fmt)
    return path


def feature_collection(features: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection from ``(properties, geometry)`` pairs."""
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": props, "geometry": geom} for props, geom in features]}


def point(lon: float, lat: float) -> dict[str, Any]:
    """A GeoJSON point."""
    return {"type": "Point", "coordinates": [lon, lat]}


class MemorySink:
    """An :class:`gis.importing.report.ImportSink` that keeps the staged rows in memory (no database)."""

    def __init__(self, known: dict[tuple[str, str], set[str]] | None = None,
                 geometry_encoding: Literal["ewkb", "wkb"] = "wkb") -> None:
        self.known = known or {}
        self.geometry_encoding = geometry_encoding
        self.tables: list[pa.Table] = []
        self.finished: dict[str, bool] | None = None
        self.aborted = False

    def known_keys(self, layer: str, key: str) -> set[str]:
        return set(self.known.get((layer, key), set()))

    def begin(self, spec: LayerSpec, provided_fields: tuple[str, ...], expected_rows: int) -> None:
        self.spec, self.provided, self.expected_rows = spec, provided_fields, expected_rows

    def encode(self, table: pa.Table) -> pa.Table:
        return table

    def write(self, batch: pa.Table) -> None:
        self.tables.append(batch)

    def abort(self) -> None:
        self.aborted = True

    def finish(self, *, replace: bool, dry_run: bool) -> WriteCounts:
        self.finished = {"replace": replace, "dry_run": dry_run}
        return WriteCounts(inserted=self.rows.num_rows if self.tables else 0, strategy="memory")

    @property
    def rows(self) -> pa.Table:
        return pa.concat_tables(self.tables)

    def records(self) -> list[dict[str, Any]]:
        """The staged rows with geometries decoded to shapely."""
        records = self.rows.to_pylist() if self.tables else []
        for record in records:
            if record.get("geom") is not None:
                record["geom"] = shapely.from_wkb(record["geom"])
        return records


OBERRHEIN_TRANSFORMERS_TOML = """\
# pandapower's MV Oberrhein network: HV/MV transformers with pandapower's own column names.
layer = "transformers"
crs = "EPSG:4326"  # pandapower geodata are WGS-84 lon/lat

[fields]
asset_id = "name"
name = "std_type"
rated_kva = { column = "sn_mva", unit = "MVA" }
status = { column = "in_service", values = { "true" = "in_service", "false" = "retired" } }
"""

OBERRHEIN_LINES_TOML = """\
# pandapower's MV Oberrhein network: its lines, cable (cs) or overhead (ol), all fed from transformer 0.
layer = "lv_lines"

[fields]
asset_id = "name"
conductor_type = "std_type"
kind = { column = "type", values = { cs = "cable", ol = "overhead" } }

[constants]
transformer_asset_id = "HV/MV Transformer 0"
"""


def export_oberrhein(folder: Path) -> dict[str, Path]:
    """Export pandapower's real MV Oberrhein network to GeoPackages with its own column names, plus mappings."""
    import pandapower.networks as pn

    net = pn.mv_oberrhein()
    folder.mkdir(parents=True, exist_ok=True)
    bus_geo = {index: shapely.from_geojson(geo) for index, geo in net.bus["geo"].items()}
    trafo = net.trafo[["name", "std_type", "sn_mva", "vn_hv_kv", "vn_lv_kv", "in_service"]].copy()
    trafos = gpd.GeoDataFrame(trafo, geometry=[bus_geo[bus] for bus in net.trafo["lv_bus"]], crs="EPSG:4326")
    line = net.line[["name", "std_type", "type", "length_km", "in_service"]].copy()
    lines = gpd.GeoDataFrame(line, geometry=[shapely.from_geojson(geo) for geo in net.line["geo"]], crs="EPSG:4326")
    paths = {"transformers": folder / "oberrhein_trafo.gpkg", "lv_lines": folder / "oberrhein_line.gpkg",
             "transformers.toml": folder / "oberrhein_trafo.toml", "lv_lines.toml": folder / "oberrhein_line.toml"}
    pyogrio.write_dataframe(trafos, paths["transformers"], layer="trafo")
    pyogrio.write_dataframe(lines, paths["lv_lines"], layer="line")
    paths["transformers.toml"].write_text(OBERRHEIN_TRANSFORMERS_TOML, encoding="utf-8")
    paths["lv_lines.toml"].write_text(OBERRHEIN_LINES_TOML, encoding="utf-8")
    return paths


#: Where pandapower's Schutterwald LV network is moved to (a Chongqing suburb; lon, lat of its centre).
SCHUTTERWALD_MOVED_TO = (106.55, 29.55)

SCHUTTERWALD_TRANSFORMERS_TOML = """\
# pandapower's LV Schutterwald network: MV/LV transformers with pandapower's own column names.
layer = "transformers"
crs = "EPSG:4326"

[fields]
asset_id = "name"
name = "std_type"
rated_kva = { column = "sn_mva", unit = "MVA" }
peak_kva = { column = "s_peak_mva", unit = "MVA" }  # pandapower's own power flow: loading_percent x sn_mva
status = { column = "in_service", values = { "true" = "in_service", "false" = "retired" } }
"""

SCHUTTERWALD_LINES_TOML = """\
# pandapower's LV Schutterwald network: all cables (cs), each fed by the transformer whose LV bus it hangs from.
# Line names repeat (75 of 3,000), so the key is the line's pandapower index, exported as column pp_index.
layer = "lv_lines"
crs = "EPSG:4326"

[fields]
asset_id = "pp_index"
conductor_type = "std_type"
kind = { column = "type", values = { cs = "cable", ol = "overhead" } }
transformer_asset_id = "trafo"  # the transformer's name, from the network's topology (tests/importdata.py)
"""


def line_transformers(net: Any) -> pd.Series:
    """The name of the transformer feeding each pandapower line (``None`` where none does).

    Buses are joined by in-service lines whose line switches are all closed; a line with an open switch
    (a normally-open point) belongs to the transformer on its closed side.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    line = net.line
    switch = net.switch[net.switch["et"] == "l"]
    open_at = {(int(s.element), int(s.bus)) for s in switch.itertuples() if not s.closed}
    open_lines = {element for element, _ in open_at}
    closed = line[line["in_service"] & ~line.index.isin(list(open_lines))]
    buses = {b: i for i, b in enumerate(net.bus.index)}
    rows = [buses[b] for b in closed["from_bus"]]
    cols = [buses[b] for b in closed["to_bus"]]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(buses), len(buses)))
    _, component = connected_components(graph, directed=False)
    trafo_of = {}
    for name, lv_bus in zip(net.trafo["name"], net.trafo["lv_bus"], strict=True):
        trafo_of.setdefault(int(component[buses[int(lv_bus)]]), str(name))
    owners = []
    for index, row in line.iterrows():
        ends = [int(row.from_bus), int(row.to_bus)]
        ends = [b for b in ends if (int(index), b) not in open_at] or ends
        owners.append(next((trafo_of[c] for c in (int(component[buses[b]]) for b in ends) if c in trafo_of), None))
    return pd.Series(owners, index=line.index, dtype=object)


def _moved(geometries: Any, origin: tuple[float, float], to: tuple[float, float]) -> Any:
    """Geometries (WGS-84) moved from ``origin`` to ``to`` keeping metres (azimuthal equidistant at both)."""
    import numpy as np
    from pyproj import Transformer

    there = Transformer.from_crs("EPSG:4326", f"+proj=aeqd +lon_0={origin[0]} +lat_0={origin[1]} +ellps=WGS84",
                                 always_xy=True)
    here = Transformer.from_crs(f"+proj=aeqd +lon_0={to[0]} +lat_0={to[1]} +ellps=WGS84", "EPSG:4326",
                                always_xy=True)

    def move(xy: Any) -> Any:
        return np.column_stack(here.transform(*there.transform(xy[:, 0], xy[:, 1])))

    return shapely.transform(geometries, move)


def export_schutterwald(folder: Path) -> dict[str, Any]:
    """Export pandapower's real LV Schutterwald network, moved into Chongqing, to GeoPackages plus mappings.

    Returns the paths (``transformers``, ``lv_lines`` and their ``.toml``), ``load_buses`` (WGS-84 points of
    the buses with a load, moved as the network) and ``unfed_lines`` (lines no transformer feeds: not exported).
    """
    import numpy as np
    import pandapower.networks as pn

    net = pn.lv_schutterwald()
    folder.mkdir(parents=True, exist_ok=True)
    bus_geo = {index: shapely.from_geojson(geo) for index, geo in net.bus["geo"].items()}
    origin = tuple(np.mean(shapely.get_coordinates(list(bus_geo.values())), axis=0).tolist())
    trafo = net.trafo[["name", "std_type", "sn_mva", "in_service"]].copy()
    trafo["s_peak_mva"] = (net.res_trafo["loading_percent"] / 100.0 * net.trafo["sn_mva"]).round(4)
    trafos = gpd.GeoDataFrame(trafo, geometry=_moved(np.array([bus_geo[b] for b in net.trafo["lv_bus"]]), origin,
                                                     SCHUTTERWALD_MOVED_TO), crs="EPSG:4326")
    line = net.line[["name", "std_type", "type", "length_km", "in_service"]].copy()
    line["trafo"] = line_transformers(net)
    line["pp_index"] = [str(i) for i in net.line.index]  # names repeat; the index is the line's identity
    fed = line["trafo"].notna()
    geometry = _moved(np.array([shapely.from_geojson(geo) for geo in net.line["geo"]]), origin, SCHUTTERWALD_MOVED_TO)
    lines = gpd.GeoDataFrame(line[fed], geometry=geometry[fed.to_numpy()], crs="EPSG:4326")
    paths: dict[str, Any] = {
        "transformers": folder / "schutterwald_trafo.gpkg", "lv_lines": folder / "schutterwald_line.gpkg",
        "transformers.toml": folder / "schutterwald_trafo.toml", "lv_lines.toml": folder / "schutterwald_line.toml"}
    pyogrio.write_dataframe(trafos, paths["transformers"], layer="trafo")
    pyogrio.write_dataframe(lines, paths["lv_lines"], layer="line")
    paths["transformers.toml"].write_text(SCHUTTERWALD_TRANSFORMERS_TOML, encoding="utf-8")
    paths["lv_lines.toml"].write_text(SCHUTTERWALD_LINES_TOML, encoding="utf-8")
    load_buses = sorted(set(int(b) for b in net.load["bus"]))
    paths["load_buses"] = [(float(p.x), float(p.y)) for p in _moved(np.array([bus_geo[b] for b in load_buses]),
                                                                  origin, SCHUTTERWALD_MOVED_TO)]
    paths["unfed_lines"] = int((~fed).sum())
    return paths
