"""Public disclosure of available capacity (R6.2): per-cell aggregates, floored and capped by the profile.

What the public sees names no asset and no asset's position: spare capacity is summed and the largest spare
taken per hexagonal cell of in-service transformers, floored to the profile's step and capped at its LV
limit (``[public_disclosure]`` of the profile). :class:`PublicDisclosure` is made with the app (one per
worker) and keeps the index of the latest capacity snapshot.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely
from shapely.geometry import mapping

from app.planning.capacity import CapacitySnapshot
from app.planning.mapdata import MapSnapshot
from app.settings import Settings
from design_rules.profiles import Profile, get_profile
from gis.crs import Projector, pin_to_local
from gis.hexgrid import hex_cell, hex_cells, hex_polygon_m, hex_ring

CapacityClass = Literal["none", "limited", "ample"]


@dataclass(frozen=True)
class DisclosurePolicy:
    """How figures are published: floored to ``rounding_kva``, single connections capped at ``cap_kva``.

    >>> policy = DisclosurePolicy(cap_kva=160.0, rounding_kva=10.0)
    >>> policy.floor(87.9), policy.largest(412.0), policy.capacity_class(policy.largest(95.0))
    (80.0, 160.0, 'limited')
    """

    cap_kva: float
    rounding_kva: float

    @classmethod
    def from_profile(cls, profile: Profile) -> DisclosurePolicy:
        """The profile's ``[public_disclosure]`` figures."""
        return cls(profile.public_disclosure.cap_kva, profile.public_disclosure.rounding_kva)

    def floor(self, value_kva: float) -> float:
        """``value_kva`` floored to the rounding step, never negative."""
        return max(0.0, math.floor(value_kva / self.rounding_kva) * self.rounding_kva)

    def largest(self, value_kva: float) -> float:
        """The largest single connection as published: floored, at most the cap."""
        return min(self.floor(value_kva), self.cap_kva)

    def capacity_class(self, largest_kva: float) -> CapacityClass:
        """``none`` below one step, ``ample`` when a connection of the cap fits, else ``limited``."""
        if largest_kva < self.rounding_kva:
            return "none"
        return "ample" if largest_kva >= self.cap_kva else "limited"


@dataclass(frozen=True)
class CellFigures:
    """Aggregates of one hexagonal cell (in-service transformers only)."""

    available_kva: float
    largest_connection_kva: float


@dataclass(frozen=True)
class PublicIndex:
    """Per-cell aggregates of one capacity snapshot, for one cell size."""

    generation: int
    size_m: float
    cells: dict[tuple[int, int], CellFigures]


def build_public_index(capacity: CapacitySnapshot, projector: Projector, size_m: float) -> PublicIndex:
    """Sum positive spare capacity and take the largest spare per hexagonal cell (in-service transformers)."""
    keep = capacity.in_service
    spare = capacity.table.spare_kva[keep]
    cells: dict[tuple[int, int], CellFigures] = {}
    if spare.shape[0]:
        x_m, y_m = projector.project_many(capacity.loads.lon_wgs84[keep], capacity.loads.lat_wgs84[keep])
        q, r = hex_cells(x_m, y_m, size_m)
        keys, inverse = np.unique(np.column_stack((q, r)), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        available = np.bincount(inverse, weights=np.maximum(spare, 0.0), minlength=keys.shape[0])
        largest = np.full(keys.shape[0], -np.inf)
        np.maximum.at(largest, inverse, spare)
        cells = {(int(k[0]), int(k[1])): CellFigures(float(available[i]), float(largest[i]))
                 for i, k in enumerate(keys)}
    return PublicIndex(capacity.generation, size_m, cells)


class PublicDisclosure:
    """This worker's public capacity disclosure: the deployment's projector, cell size and policy, and the index
    of the latest snapshot (rebuilt when the snapshot's generation moves)."""

    def __init__(self, settings: Settings) -> None:
        self.projector = Projector(settings.projected_crs, service_area_wgs84=settings.service_area_wgs84)
        self.size_m = settings.public_hex_size_m
        self.policy = DisclosurePolicy.from_profile(get_profile(settings.profile))
        self._lock = threading.Lock()
        self._index: PublicIndex | None = None

    def index(self, snapshot: MapSnapshot) -> PublicIndex:
        """The per-cell index of ``snapshot`` (built once per generation)."""
        with self._lock:
            if self._index is None or self._index.generation != snapshot.generation:
                self._index = build_public_index(snapshot.capacity, self.projector, self.size_m)
            return self._index

    def near(self, snapshot: MapSnapshot, lon: float, lat: float, crs: str) -> dict[str, Any]:
        """What can be connected near the pin: the grid area's figures and the pin's cell and its six neighbours."""
        policy, size_m = self.policy, self.size_m
        local = pin_to_local(lon, lat, crs, self.projector)
        index = self.index(snapshot)
        q0, r0 = hex_cell(local.x_m, local.y_m, size_m)
        cells = []
        for q, r in hex_ring(q0, r0):
            figures = index.cells.get((q, r), CellFigures(0.0, 0.0))
            largest = policy.largest(figures.largest_connection_kva)
            cells.append({"is_location_cell": (q, r) == (q0, r0), "capacity_class": policy.capacity_class(largest),
                          "available_kva": policy.floor(figures.available_kva), "largest_connection_kva": largest,
                          "geometry": mapping(self.projector.geometry_to_wgs84(hex_polygon_m(q, r, size_m)))})
        areas = snapshot.layers["grid_areas"]
        found = areas.tree_wgs84.query(shapely.Point(local.lon_wgs84, local.lat_wgs84), predicate="intersects")
        area = None
        if found.shape[0]:
            row = snapshot.capacity.areas[str(areas.feature_ids[int(np.min(found))])]
            area = {"name": row.name, "area_type": row.area_type,
                    "allowable_kva": policy.floor(row.capacity.allowable_kva), "precontrol": row.capacity.precontrol}
        return {"lon_wgs84": local.lon_wgs84, "lat_wgs84": local.lat_wgs84, "grid_area": area, "cell_size_m": size_m,
                "cells": cells, "generation": snapshot.generation}
