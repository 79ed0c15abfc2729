"""Public disclosure of available capacity (R6.2): per-cell aggregates, floored and capped by the profile.

What the public sees names no asset and no asset's position: spare capacity is summed and the largest spare
taken per hexagonal cell of in-service transformers, floored to the profile's step and capped at its LV
limit (``[public_disclosure]`` of the profile). :class:`PublicDisclosure` is made with the app (one per
worker) and keeps the index of the latest capacity snapshot. :func:`disclosure_document` is the rest of what
the public is told (BS 四(五)1): process, time limits, documents, the 12398 hotline and the service phone.
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
from design_rules.profiles import JobClass, Profile, StepCode, get_profile
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


#: The energy regulator's hotline (能源监管热线), the same number nationwide (not a deployment setting).
REGULATOR_HOTLINE = "12398"
REGULATOR_HOTLINE_SOURCE = ("BS 四(五)1 (将12398能源监管热线和公司、分公司供电服务电话在门户网站、"
                            "供电营业场所同步公开到位); SH 22 (密切关注 12398 能源监管热线情况通报)")
SERVICE_PHONE_SOURCE = "BS 四(五)1 (公司、分公司供电服务电话……同步公开到位)"
#: The default service phone (``SANLING_SERVICE_PHONE``): State Grid's service line.
STATE_GRID_SERVICE_PHONE = "95598"
STATE_GRID_SERVICE_PHONE_SOURCE = "; 95598: 国家电网供电服务热线 (the 95598 网站 of CQ-45 措施10 and SH 3)"
DISCLOSURE_ITEMS_SOURCE = ("BS 四(五)1 (多渠道、多方式及时公布办电流程、办理时限、办理环节、申请资料等信息……"
                           "公布本地区配电网接入能力和容量受阻情况); "
                           "SH 22 (公开电网资源、服务流程、作业标准、承诺时限等信息)")
#: Label points of the grid areas are published to 3 decimals (~100 m): enough to centre a map, no more.
LABEL_POINT_DIGITS = 3


def disclosure_document(profile: Profile, settings: Settings, snapshot: MapSnapshot) -> dict[str, Any]:
    """The public disclosure items (R6.2; BS 四(五)1): the process, its time limits per job class, the documents
    to bring, the 12398 hotline and the service phone, every item with the profile's source; the service area's
    bounds, how capacity figures are published, and the grid areas' names with a label point (the names the
    capacity answer discloses, for the page's search; no code, no outline, no asset)."""
    schedule, required = profile.schedule, profile.required_documents
    job_classes = [{
        "job_class": job_class.value, "label_zh": job_class.label_zh, "total_days": deadline.total_days,
        "source": deadline.source, "steps_source": deadline.steps_source,
        "steps": [{"step": step.value, "label_zh": step.label_zh, "days": deadline.steps_days[step]}
                  for step in StepCode],
    } for job_class, deadline in ((job_class, profile.deadlines[job_class]) for job_class in JobClass)]
    areas = snapshot.layers["grid_areas"]
    grid_areas = []
    for position in range(len(areas)):
        row = snapshot.capacity.areas[str(areas.feature_ids[position])]
        point = areas.geometries_wgs84[position].representative_point()
        grid_areas.append({"name": row.name, "area_type": row.area_type,
                           "lon_wgs84": round(point.x, LABEL_POINT_DIGITS),
                           "lat_wgs84": round(point.y, LABEL_POINT_DIGITS)})
    grid_areas.sort(key=lambda area: area["name"])
    policy = profile.public_disclosure
    return {
        "profile": {"profile_id": profile.profile_id, "name_zh": profile.name_zh, "region_zh": profile.region_zh,
                    "effective_from": profile.effective_from,
                    "documents": [{"key": d.key, "title_zh": d.title_zh, "number_zh": d.number_zh}
                                  for d in profile.documents]},
        "source": DISCLOSURE_ITEMS_SOURCE,
        "schedule": {"day_kind": schedule.day_kind.value, "day_kind_zh": schedule.day_kind.label_zh,
                     "count_from_zh": schedule.count_from.label_zh, "source": schedule.source},
        "job_classes": job_classes,
        "documents_required": {
            "items": [{"kind": kind.value, "label_zh": kind.label_zh, "deferrable": kind in required.deferrable}
                      for kind in required.required],
            "deferred_until_zh": required.deferred_until_zh, "one_certificate": required.one_certificate,
            "source": required.source},
        "phones": [{"kind": "regulator_hotline", "label_zh": "12398 能源监管热线", "number": REGULATOR_HOTLINE,
                    "source": REGULATOR_HOTLINE_SOURCE},
                   {"kind": "service_phone", "label_zh": "供电服务电话", "number": settings.service_phone,
                    "source": SERVICE_PHONE_SOURCE + (STATE_GRID_SERVICE_PHONE_SOURCE
                                              if settings.service_phone == STATE_GRID_SERVICE_PHONE else "")}],
        "capacity_publication": {"cap_kva": policy.cap_kva, "rounding_kva": policy.rounding_kva,
                                 "cell_size_m": settings.public_hex_size_m, "source": policy.source},
        "service_area_wgs84": list(settings.service_area_wgs84),
        "grid_areas": grid_areas,
    }
