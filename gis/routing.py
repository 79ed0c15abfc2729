"""Route from an access point to the meter box: direct, along roads, or straight with a detour factor (R4.1)."""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import networkx as nx
import numpy as np
import shapely
from shapely import LineString, Point, STRtree
from shapely.geometry.base import BaseGeometry
from shapely.ops import substring

from gis.crs import Projector
from gis.errors import InvalidInputError

__all__ = ["DEFAULT_DETOUR_FACTOR", "RoadCrossing", "RoadNetwork", "Route", "RouteMethod", "route_geojson"]

#: Straight-line length × this factor estimates a route where no road data is loaded (DOMAIN §1.1: 1.2–1.4).
DEFAULT_DETOUR_FACTOR = 1.3

RouteMethod = Literal["direct", "road", "straight_fallback"]

# Road pieces whose midpoint lies within this distance of a road are attributed to it.
_ATTRIBUTION_TOL_M = 1e-6


class RoadCrossing(NamedTuple):
    """A road whose centre line the route crosses."""

    road_id: str
    name: str | None
    road_class: str


@dataclass(frozen=True)
class Route:
    """A route in local metres.

    Attributes
    ----------
    line_local : LineString
        The route, from the access point to the meter box, in the local projected CRS.
    length_m : float
        Route length in metres (for ``straight_fallback``: straight length × detour factor).
    method : {'direct', 'road', 'straight_fallback'}
        How it was found (see :meth:`RoadNetwork.route`).
    crossings : tuple of RoadCrossing
        Roads crossed transversally, in order along the route.
    enters_no_overhead_zone : bool
        The route touches or enters a no-overhead (cable-only) zone, or an end lies inside one.
    """

    line_local: LineString
    length_m: float
    method: RouteMethod
    crossings: tuple[RoadCrossing, ...]
    enters_no_overhead_zone: bool

    def to_dict(self, projector: Projector) -> dict[str, Any]:
        """Return plain JSON with the route as a GeoJSON LineString in WGS-84 lon/lat."""
        return {
            "geometry": route_geojson(self, projector),
            "length_m": self.length_m,
            "method": self.method,
            "crossings": [c._asdict() for c in self.crossings],
            "enters_no_overhead_zone": self.enters_no_overhead_zone,
        }


def route_geojson(route: Route, projector: Projector) -> dict[str, Any]:
    """Return the route as an RFC 7946 GeoJSON LineString in WGS-84 lon/lat."""
    return projector.geojson_wgs84(route.line_local)


class _Edge(NamedTuple):
    line: LineString  # oriented from the node with the smaller key to the other
    road: int  # index into the road table


class RoadNetwork:
    """Noded road centre lines as a graph, plus no-overhead zones, for routing in local metres.

    Build with :meth:`build`; the object is read-only afterwards and safe to share between threads.

    Examples
    --------
    >>> from shapely import LineString, box
    >>> net = RoadNetwork.build([("R1", "Jiefang Rd", "arterial", LineString([(0, 0), (100, 0)]))], [])
    >>> r = net.route((10.0, 5.0), (90.0, 5.0))  # both on the north side: no road crossed
    >>> r.method, r.length_m
    ('direct', 80.0)
    >>> r = net.route((10.0, 5.0), (90.0, -5.0))  # other side: along R1, then across it
    >>> r.method, [c.road_id for c in r.crossings], r.length_m
    ('road', ['R1'], 90.0)
    """

    def __init__(
        self,
        road_ids: list[str],
        road_names: list[str | None],
        road_classes: list[str],
        road_lines: list[LineString],
        zones: list[BaseGeometry],
        detour_factor: float,
    ) -> None:
        self.detour_factor = detour_factor
        self._road_ids = road_ids
        self._road_names = road_names
        self._road_classes = road_classes
        self._road_lines = np.asarray(road_lines, dtype=object)
        self._road_tree = STRtree(self._road_lines)
        self._zones = np.asarray(zones, dtype=object)
        self._zone_tree = STRtree(self._zones)
        self.graph: nx.Graph = nx.Graph()
        self._edges: list[_Edge] = []
        self._edge_nodes: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self._build_graph()
        self._edge_tree = STRtree(np.asarray([e.line for e in self._edges], dtype=object))

    @classmethod
    def build(
        cls,
        roads: Sequence[tuple[str, str | None, str, LineString]],
        no_overhead_zones: Sequence[BaseGeometry],
        detour_factor: float = DEFAULT_DETOUR_FACTOR,
    ) -> RoadNetwork:
        """Node the road centre lines and build the routing graph.

        Parameters
        ----------
        roads
            ``(road_id, name, road_class, line_local)`` with the centre line in local metres
            (LineString or MultiLineString).
        no_overhead_zones
            Polygons/MultiPolygons in local metres where only cable is allowed.
        detour_factor
            Used only when no roads are loaded (``straight_fallback``); must be ≥ 1.

        Raises
        ------
        InvalidInputError
            Empty or non-line road geometry, non-polygon zones, detour factor < 1.
        """
        if not (math.isfinite(detour_factor) and detour_factor >= 1.0):
            raise InvalidInputError("detour_factor must be >= 1.", field="detour_factor", value=str(detour_factor))
        ids: list[str] = []
        names: list[str | None] = []
        classes: list[str] = []
        lines: list[LineString] = []
        for road_id, name, road_class, geometry in roads:
            if geometry is None or geometry.is_empty or geometry.geom_type not in ("LineString", "MultiLineString"):
                raise InvalidInputError("A road needs a line geometry.", field="roads", road_id=str(road_id))
            for part in shapely.get_parts(geometry):
                if part.length > 0.0:
                    ids.append(str(road_id))
                    names.append(name)
                    classes.append(road_class)
                    lines.append(part)
        zones: list[BaseGeometry] = []
        for zone in no_overhead_zones:
            if zone is None or zone.geom_type not in ("Polygon", "MultiPolygon"):
                raise InvalidInputError("A no-overhead zone needs a polygon geometry.", field="no_overhead_zones")
            zones.append(zone)
        return cls(ids, names, classes, lines, zones, detour_factor)

    @property
    def has_roads(self) -> bool:
        """Whether any road is loaded."""
        return len(self._road_ids) > 0

    def _build_graph(self) -> None:
        if not self.has_roads:
            return
        noded = shapely.get_parts(shapely.node(shapely.MultiLineString(list(self._road_lines))))
        midpoints = shapely.line_interpolate_point(noded, 0.5, normalized=True)
        piece_idx, road_idx = self._road_tree.query_nearest(midpoints, max_distance=_ATTRIBUTION_TOL_M)
        road_of_piece = np.full(len(noded), -1, dtype=np.int64)
        # query_nearest lists ties in tree order; keep the first road for each piece
        for piece, road in zip(piece_idx[::-1].tolist(), road_idx[::-1].tolist(), strict=True):
            road_of_piece[piece] = road
        for piece, road in zip(noded.tolist(), road_of_piece.tolist(), strict=True):
            if road < 0:
                continue
            coords = _coords(piece)
            if coords[0] == coords[-1]:
                # a closed piece (a ring road) becomes two edges between two distinct nodes
                for half in _halves(piece):
                    self._add_edge(half, road)
            else:
                self._add_edge(coords, road)

    def _add_edge(self, coords: list[tuple[float, float]], road: int) -> None:
        a, b = coords[0], coords[-1]
        u, v = (a, b) if a < b else (b, a)
        if self.graph.has_edge(u, v):
            # a parallel piece (nx.Graph keeps one edge per node pair): split it at its middle
            for half in _halves(LineString(coords)):
                self._add_edge(half, road)
            return
        line = LineString(coords if a < b else coords[::-1])
        self._edges.append(_Edge(line, road))
        self._edge_nodes.append((u, v))
        self.graph.add_edge(u, v, length_m=line.length, edge=len(self._edges) - 1)

    # -- routing -------------------------------------------------------------------------------

    def route(self, start_xy: tuple[float, float], end_xy: tuple[float, float]) -> Route:
        """Route from ``start_xy`` (access point) to ``end_xy`` (meter box), both in local metres (R4.1).

        * No roads loaded: the straight line, with ``length_m = straight × detour_factor``
          (``straight_fallback``).
        * The straight segment crosses no road centre line: the straight line (``direct``), e.g. a
          service drop, or a line along one side of a street.
        * Otherwise the line follows the roads (``road``): an off-road leg from each end to the
          nearest point of the nearest road piece, and the shortest path between them. When the
          two ends lie on unconnected parts of the network, the straight line is used
          (``straight_fallback``) and its crossings are reported.

        Crossings are the roads whose centre line the chosen route crosses transversally
        (``shapely.crosses``), excluding the roads it runs along; a road it runs along counts as
        crossed when the route joins and leaves it on opposite sides (e.g. the pole is north of
        the street and the meter box south of it).

        Parameters
        ----------
        start_xy, end_xy
            ``(x_m, y_m)`` in the local projected CRS.

        Returns
        -------
        Route
            The chosen route with its length, method, crossings and no-overhead-zone flag.
        """
        return self.route_many([start_xy], end_xy)[0]

    def route_many(self, starts_xy: Sequence[tuple[float, float]], end_xy: tuple[float, float]) -> list[Route]:
        """:meth:`route` from each of ``starts_xy`` (the candidates' access points) to one meter box.

        The same routes as one :meth:`route` call each; the meter box is snapped to the road network once.
        """
        end = _xy(end_xy, "end_xy")
        starts = [_xy(start_xy, "start_xy") for start_xy in starts_xy]
        snap_end = functools.cache(lambda: self._snap(end))
        # GEOS divides by segment lengths; sub-nanometre segments would only raise numpy warnings
        with np.errstate(divide="ignore", invalid="ignore"):
            return [self._route(start, end, snap_end) for start in starts]

    def _route(self, start: tuple[float, float], end: tuple[float, float],
               snap_end: Callable[[], tuple[int, float]]) -> Route:
        straight = LineString([start, end])
        if not self.has_roads:
            return self._finish(straight, straight.length * self.detour_factor, "straight_fallback", [])
        if self._road_tree.query(straight, predicate="crosses").size == 0:
            return self._finish(straight, straight.length, "direct", [])
        pieces = self._road_route(start, end, snap_end())
        if pieces is None:
            return self._finish(straight, straight.length * self.detour_factor, "straight_fallback", [])
        coords = _dedupe([c for piece, _ in pieces for c in piece])
        line = LineString(coords if len(coords) > 1 else [start, end])
        return self._finish(line, line.length, "road", pieces)

    def _finish(self, line: LineString, length_m: float, method: RouteMethod, pieces: list[_Piece]) -> Route:
        along_ids = {self._road_ids[road] for _, road in pieces if road is not None}
        found: dict[str, tuple[float, RoadCrossing]] = {}
        for road in self._road_tree.query(line, predicate="crosses").tolist():
            road_id = self._road_ids[road]
            if road_id in along_ids or road_id in found:
                continue
            where_m = _locate(line, line.intersection(self._road_lines[road]).representative_point())
            found[road_id] = (where_m, self._crossing(road))
        for where_m, road in self._side_changes(pieces):
            road_id = self._road_ids[road]
            if road_id not in found:
                found[road_id] = (_locate(line, Point(where_m)), self._crossing(road))
        crossings = tuple(c for _, c in sorted(found.values(), key=lambda item: item[0]))
        in_zone = self._zone_tree.query(line, predicate="intersects").size > 0
        return Route(line, float(length_m), method, crossings, bool(in_zone))

    def _crossing(self, road: int) -> RoadCrossing:
        return RoadCrossing(self._road_ids[road], self._road_names[road], self._road_classes[road])

    def _side_changes(self, pieces: list[_Piece]) -> list[tuple[tuple[float, float], int]]:
        """Roads the route runs along and leaves on the other side from where it joined them.

        The side of the point before the join (after the leave) is taken against the route's own direction
        where it joins (leaves) the road: along one road the route runs one way, so comparing both sides
        against the travel direction is comparing them against the road's.
        """
        runs: list[tuple[int, int, int]] = []  # (road, first piece, last piece)
        for i, (coords, road) in enumerate(pieces):
            if road is None or len(coords) < 2:
                continue
            if runs and runs[-1][0] == road and runs[-1][2] == i - 1:
                runs[-1] = (road, runs[-1][1], i)
            else:
                runs.append((road, i, i))
        changes = []
        for road, first, last in runs:
            join, leave = pieces[first][0][0], pieces[last][0][-1]
            before = _last_point_before(pieces, first, join)
            after = _first_point_after(pieces, last, leave)
            if before is None or after is None:
                continue
            heading_in = _first_step(pieces, first, last)
            heading_out = _last_step(pieces, first, last)
            if heading_in is None or heading_out is None:  # it only touches the road: the road's own direction
                heading_in = heading_out = _road_heading(self._road_lines[road], join)
                if heading_in is None:
                    continue
            if _side(heading_in, join, before) * _side(heading_out, leave, after) < 0:
                changes.append((leave, road))
        return changes

    def _snap(self, point: tuple[float, float]) -> tuple[int, float]:
        """Return (edge, distance along the edge's line) of the point's nearest road piece."""
        edge = int(self._edge_tree.query_nearest(Point(point))[0])
        return edge, float(self._edges[edge].line.project(Point(point)))

    def _road_route(self, start: tuple[float, float], end: tuple[float, float],
                    end_snapped: tuple[int, float]) -> list[_Piece] | None:
        """Pieces (coordinates, road or None for off-road legs) of the shortest road route.

        ``end_snapped`` is :meth:`_snap` of ``end``.
        """
        edge_s, at_s = self._snap(start)
        edge_e, at_e = end_snapped
        line_s, line_e = self._edges[edge_s].line, self._edges[edge_e].line
        road_s, road_e = self._edges[edge_s].road, self._edges[edge_e].road
        best_m = math.inf
        best: list[_Piece] | None = None
        if edge_s == edge_e:
            piece = _oriented_coords(line_s, at_s, at_e)
            best_m, best = LineString(piece).length, [(piece, road_s)]
        nodes_s = self._edge_nodes[edge_s]
        nodes_e = self._edge_nodes[edge_e]
        # one multi-source search: from both ends of the start piece (seeded with the distance along it) to
        # both ends of the end piece (plus the distance along it); the same optimum as the four pairings
        found = _dijkstra_between(
            self.graph._adj,  # the plain dict-of-dicts, as networkx's own Dijkstra reads it (the views cost 2x)
            {nodes_s[0]: at_s, nodes_s[1]: line_s.length - at_s},
            {nodes_e[0]: at_e, nodes_e[1]: line_e.length - at_e},
            best_m,
        )
        if found is not None:
            total_m, path = found
            end_s = 0.0 if path[0] == nodes_s[0] else line_s.length
            end_e = 0.0 if path[-1] == nodes_e[0] else line_e.length
            route: list[_Piece] = [(_oriented_coords(line_s, at_s, end_s), road_s)]
            for u, v in itertools.pairwise(path):
                edge = self._edges[self.graph.edges[u, v]["edge"]]
                coords = _coords(edge.line)
                route.append((coords if coords[0] == u else coords[::-1], edge.road))
            route.append((_oriented_coords(line_e, end_e, at_e), road_e))
            best_m, best = total_m, route
        if best is None:
            return None
        first = best[0][0][0]
        last = best[-1][0][-1]
        return [([start, first], None), *best, ([last, end], None)]


_Piece = tuple[list[tuple[float, float]], int | None]


def _dijkstra_between(adjacency: Any, sources: dict[Any, float], targets: dict[Any, float],
                      bound_m: float) -> tuple[float, list[Any]] | None:
    """Shortest ``seed + path + tail`` from any source to any target, shorter than ``bound_m``.

    ``sources`` maps nodes to their seed distance, ``targets`` to the distance still to go after them.
    Stops as soon as the nearest unsettled node is no closer than the best total found, so it explores
    only a disc of about the route's length around the start. Returns ``(total_m, nodes)`` or ``None``.
    """
    heap: list[tuple[float, int, Any, Any]] = []
    tie = itertools.count()
    for node, seed_m in sources.items():
        heapq.heappush(heap, (seed_m, next(tie), node, None))
    settled: dict[Any, Any] = {}
    best_m, best_node = bound_m, None
    while heap:
        dist_m, _, node, previous = heapq.heappop(heap)
        if node in settled:
            continue
        settled[node] = previous
        if dist_m >= best_m:
            break
        tail_m = targets.get(node)
        if tail_m is not None and dist_m + tail_m < best_m:
            best_m, best_node = dist_m + tail_m, node
        for neighbour, attributes in adjacency[node].items():
            if neighbour not in settled:
                next_m = dist_m + attributes["length_m"]
                if next_m < best_m:
                    heapq.heappush(heap, (next_m, next(tie), neighbour, node))
    if best_node is None:
        return None
    path = [best_node]
    while settled[path[-1]] is not None:
        path.append(settled[path[-1]])
    return best_m, path[::-1]


def _locate(line: LineString, point: Point) -> float:
    """Distance along ``line`` of the point nearest to ``point`` (0 for a zero-length line)."""
    return float(line.project(point)) if line.length > 0.0 else 0.0


def _coords(line: LineString) -> list[tuple[float, float]]:
    return [(float(c[0]), float(c[1])) for c in line.coords]


def _last_point_before(pieces: list[_Piece], index: int, point: tuple[float, float]) -> tuple[float, float] | None:
    for coords, _ in reversed(pieces[:index]):
        for c in reversed(coords):
            if c != point:
                return c
    return None


def _first_point_after(pieces: list[_Piece], index: int, point: tuple[float, float]) -> tuple[float, float] | None:
    for coords, _ in pieces[index + 1 :]:
        for c in coords:
            if c != point:
                return c
    return None


def _first_step(pieces: list[_Piece], first: int, last: int) -> tuple[float, float] | None:
    """Direction (dx, dy) of the first segment of non-zero length in ``pieces[first..last]``."""
    for coords, _ in pieces[first : last + 1]:
        for (x0, y0), (x1, y1) in itertools.pairwise(coords):
            if (x0, y0) != (x1, y1):
                return x1 - x0, y1 - y0
    return None


def _last_step(pieces: list[_Piece], first: int, last: int) -> tuple[float, float] | None:
    """Direction (dx, dy) of the last segment of non-zero length in ``pieces[first..last]``."""
    for coords, _ in reversed(pieces[first : last + 1]):
        for (x0, y0), (x1, y1) in itertools.pairwise(reversed(coords)):
            if (x0, y0) != (x1, y1):
                return x0 - x1, y0 - y1
    return None


def _road_heading(line: LineString, at: tuple[float, float]) -> tuple[float, float] | None:
    """Direction (dx, dy) of ``line`` around the point ``at`` on it (a 1 m chord), ``None`` if it has none there."""
    t_m = line.project(Point(at))
    step_m = min(0.5, line.length / 2.0)
    a = line.interpolate(max(t_m - step_m, 0.0))
    b = line.interpolate(min(t_m + step_m, line.length))
    dx, dy = b.x - a.x, b.y - a.y
    return None if dx == 0.0 and dy == 0.0 else (dx, dy)


def _side(heading: tuple[float, float], at: tuple[float, float], point: tuple[float, float]) -> int:
    """+1 / -1 for a point left / right of the direction ``heading`` through ``at``; 0 within 1 mm of it."""
    dx, dy = heading
    cross = (dx * (point[1] - at[1]) - dy * (point[0] - at[0])) / math.hypot(dx, dy)
    if abs(cross) < 1e-3:
        return 0
    return 1 if cross > 0 else -1


def _halves(line: LineString) -> list[list[tuple[float, float]]]:
    half_m = line.length / 2.0
    return [_coords(substring(line, 0.0, half_m)), _coords(substring(line, half_m, line.length))]


def _oriented_coords(line: LineString, from_m: float, to_m: float) -> list[tuple[float, float]]:
    """Vertices of the part of ``line`` between two distances along it, oriented from ``from_m`` to ``to_m``.

    Always at least two points (twice the same point for a zero-length part). Plain arithmetic over the
    line's few vertices: several times faster than ``shapely.ops.substring`` for a piece of one street.
    """
    coords = _coords(line)
    low_m, high_m = (from_m, to_m) if from_m <= to_m else (to_m, from_m)
    low_m = min(max(low_m, 0.0), line.length)
    high_m = min(max(high_m, low_m), line.length)
    part: list[tuple[float, float]] = []
    walked_m = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(coords):
        segment_m = math.hypot(x1 - x0, y1 - y0)
        end_m = walked_m + segment_m
        if not part and low_m <= end_m:
            t = (low_m - walked_m) / segment_m if segment_m > 0.0 else 0.0
            part.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
        if part:
            if high_m <= end_m:
                t = (high_m - walked_m) / segment_m if segment_m > 0.0 else 1.0
                part.append((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
                break
            part.append((x1, y1))
        walked_m = end_m
    if not part:  # rounding left both distances past the last vertex
        part = [coords[-1]]
    part = _dedupe(part)
    if len(part) == 1:
        part.append(part[0])
    return part if from_m <= to_m else part[::-1]


def _dedupe(coords: list[tuple[float, ...]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for c in coords:
        xy = (float(c[0]), float(c[1]))
        if not out or out[-1] != xy:
            out.append(xy)
    return out


def _xy(value: tuple[float, float], field: str) -> tuple[float, float]:
    x_m, y_m = (float(v) for v in value)
    if not (math.isfinite(x_m) and math.isfinite(y_m)):
        raise InvalidInputError("Route ends must be finite local coordinates.", field=field)
    return x_m, y_m
