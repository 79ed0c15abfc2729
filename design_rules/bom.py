"""Bill of materials with cost from the typical designs (R4.3): quantities, unit prices, totals, exports."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.styles import Font

from design_rules.catalogue import (
    Area,
    AssemblyLine,
    CatalogueInvalidError,
    JobClass,
    MaterialSelector,
    PriceList,
    PriceRow,
    TypicalDesigns,
    load_price_list,
    load_typical_designs,
)
from design_rules.sizing import SizingResult
from gis.errors import InvalidInputError

AccessKind = Literal["pole", "branch_box", "transformer"]
UpgradeKind = Literal["uprate", "new_transformer"]
UnitKind = Literal["pole_mounted", "box"]
RoadCrossing = tuple[str, str]
"""A road crossed by the new route: ``(road name, road_class)``."""

_CENT = Decimal("0.01")
_CSV_COLUMNS = (
    "assembly",
    "material_code",
    "name_zh",
    "name_en",
    "unit",
    "quantity",
    "unit_price_cny",
    "amount_cny",
)


@dataclass(frozen=True, slots=True)
class BomLine:
    """One priced line of a bill of materials; ``amount_cny = quantity × unit_price_cny`` to the fen."""

    material_code: str
    name_zh: str
    name_en: str
    unit: str
    quantity: float
    unit_price_cny: Decimal
    amount_cny: Decimal
    assembly: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (money as numbers rounded to the fen)."""
        return {
            "material_code": self.material_code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "unit": self.unit,
            "quantity": self.quantity,
            "unit_price_cny": float(self.unit_price_cny),
            "amount_cny": float(self.amount_cny),
            "assembly": self.assembly,
        }


@dataclass(frozen=True, slots=True)
class Bom:
    """A bill of materials: lines, total and subtotals by assembly, all in CNY (excl. VAT).

    ``drivers`` records the quantity drivers (poles, trench metres, …) the lines were computed from,
    so that a reviewer can audit every quantity.
    """

    job_class: str
    lines: tuple[BomLine, ...]
    total_cny: Decimal
    by_assembly: Mapping[str, Decimal]
    drivers: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict.

        Examples
        --------
        >>> from design_rules.sizing import size_service_drop
        >>> bom = build_bom("direct_meter", size_service_drop(8, 0.9, 1, 20, "overhead", 2.0), 20, [], False, "urban")
        >>> d = bom.to_dict()
        >>> d["currency"], d["total_cny"] == float(bom.total_cny)
        ('CNY', True)
        """
        return {
            "job_class": self.job_class,
            "currency": "CNY",
            "total_cny": float(self.total_cny),
            "by_assembly": {key: float(value) for key, value in self.by_assembly.items()},
            "lines": [line.to_dict() for line in self.lines],
            "drivers": dict(self.drivers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bom:
        """Rebuild a BOM from :meth:`to_dict` output (a stored, frozen design); money back to Decimal fen.

        Examples
        --------
        >>> from design_rules.sizing import size_service_drop
        >>> bom = build_bom("direct_meter", size_service_drop(8, 0.9, 1, 20, "overhead", 2.0), 20, [], False, "urban")
        >>> Bom.from_dict(bom.to_dict()) == bom
        True
        """
        lines = tuple(
            BomLine(material_code=line["material_code"], name_zh=line["name_zh"], name_en=line["name_en"],
                    unit=line["unit"], quantity=float(line["quantity"]), unit_price_cny=_fen(line["unit_price_cny"]),
                    amount_cny=_fen(line["amount_cny"]), assembly=line["assembly"])
            for line in data["lines"]
        )
        return cls(job_class=data["job_class"], lines=lines, total_cny=_fen(data["total_cny"]),
                   by_assembly={key: _fen(value) for key, value in data["by_assembly"].items()},
                   drivers=dict(data["drivers"]))


def _fen(value: float | str) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def quantity_drivers(
    sizing: SizingResult,
    route_length_m: float,
    crossings: Sequence[RoadCrossing],
    excavation: bool,
    span_m: float,
    *,
    angle_poles: int = 0,
    mv_line_m: float = 0.0,
    designs: TypicalDesigns | None = None,
) -> dict[str, float]:
    """Compute every named quantity driver of the typical designs (DOMAIN §4.2–4.3).

    ``poles = ceil(L / span) + 1`` (both ends included); two of them are terminal poles, ``angle_poles``
    are angle/strain poles, the rest are straight. Strain ends: both ends of the line and two per angle
    pole. Conductor runs: the circuit's conductor count (4 three-phase, 2 single-phase) divided by the
    conductor's cores (one run for a bundled drop or a cable). Crossing length per road class and
    surface come from the data; excavated crossings need trench and restoration, others go trenchless.
    ``mv_line_m`` is the new 10 kV line of a new transformer by the load (0 otherwise).

    Examples
    --------
    >>> from design_rules.sizing import size_conductor
    >>> d = quantity_drivers(size_conductor(50, 0.85, 3, 120, "overhead", 5.0), 120, [], False, 50.0)
    >>> d["poles"], d["conductor_route_m"], d["conductor_strain_end"]
    (4.0, 480.0, 8.0)
    """
    designs = designs or load_typical_designs()
    geometry = designs.geometry
    if not (route_length_m >= 0 and math.isfinite(route_length_m)):
        raise InvalidInputError("route_length_m must be a finite length ≥ 0", field="route_length_m")
    if not span_m > 0:
        raise InvalidInputError("span_m must be positive", field="span_m", value=span_m)
    if not (mv_line_m >= 0 and math.isfinite(mv_line_m)):
        raise InvalidInputError("mv_line_m must be a finite length ≥ 0", field="mv_line_m")
    if angle_poles < 0:
        raise InvalidInputError("angle_poles must be ≥ 0", field="angle_poles", value=angle_poles)
    spans = math.ceil(route_length_m / span_m - 1e-9) if route_length_m > 0 else 0
    poles = spans + 1 if spans else 0
    terminal_poles = min(poles, geometry.terminal_poles)
    angle = min(angle_poles, poles - terminal_poles)
    conductors = geometry.conductors_per_circuit[str(sizing.phases)]  # type: ignore[index]
    runs = math.ceil(conductors / (sizing.cores or 1))
    strain_ends = 2 + 2 * angle
    crossing_length_m = 0.0
    restoration = dict.fromkeys(("asphalt", "concrete", "paving", "soil"), 0.0)
    for road_name, road_class in crossings:
        rule = designs.road_classes.get(road_class)
        if rule is None:
            raise InvalidInputError(
                f"crossing {road_name!r}: unknown road class {road_class!r}",
                field="crossings",
                known=sorted(designs.road_classes),
            )
        crossing_length_m += rule.crossing_length_m
        if excavation:
            restoration[rule.surface] += geometry.trench_width_m * rule.crossing_length_m
    drivers = {
        "job": 1.0,
        "route_length_m": float(route_length_m),
        "spans": float(spans),
        "poles": float(poles),
        "terminal_poles": float(terminal_poles),
        "angle_poles": float(angle),
        "straight_poles": float(poles - terminal_poles - angle),
        "conductors": float(conductors),
        "conductor_runs": float(runs),
        "conductor_route_m": float(route_length_m) * runs,
        "strain_ends": float(strain_ends),
        "conductor_strain_end": float(strain_ends * runs),
        "straight_pole_conductors": float((poles - terminal_poles - angle) * conductors),
        "angle_pole_conductors": float(angle * conductors),
        "cable_ends": 2.0,
        "crossings": float(len(crossings)),
        "crossing_length_m": crossing_length_m,
        "pipe_m": crossing_length_m + 2 * geometry.pipe_extension_m * len(crossings),
        "trench_verge_m": max(float(route_length_m) - crossing_length_m, 0.0),
        "trench_carriageway_m": crossing_length_m if excavation else 0.0,
        "trenchless_m": 0.0 if excavation else crossing_length_m,
        "route_markers": float(math.ceil(route_length_m / geometry.route_marker_interval_m - 1e-9) + 1),
        "mv_line_m": float(mv_line_m),
    }
    drivers.update({f"restoration_{surface}_m2": area_m2 for surface, area_m2 in restoration.items()})
    return drivers


def _matches(when: Mapping[str, Sequence[Any]], context: Mapping[str, Any]) -> bool:
    return all(context[key] in allowed for key, allowed in when.items())


def _resolve(selector: MaterialSelector, sizing: SizingResult, prices: PriceList, rated_kva: float | None = None
             ) -> PriceRow:
    if selector.code is not None:
        return prices.by_code(selector.code)
    if selector.designation is not None:
        values = {
            "conductor": sizing.conductor,
            "meter_designation": sizing.meter_designation,
            "ct_ratio": sizing.ct_ratio,
        }
        try:
            designation = selector.designation.format_map({k: v for k, v in values.items() if v is not None})
        except KeyError as exc:
            raise CatalogueInvalidError(
                f"typical_designs.toml: designation template {selector.designation!r} needs {exc} "
                "which the sizing result does not have",
                file="typical_designs.toml",
                entry=selector.designation,
                field="material.designation",
                error="template value missing",
            ) from None
        return prices.by_designation(designation)
    if selector.by == "rated_kva":
        if rated_kva is None:
            raise InvalidInputError(f"material family {selector.family!r} is chosen by the new unit's rating, "
                                    "and the job names none", field="rated_kva")
        return prices.select(selector.family or "", rated_kva)
    value = sizing.size_mm2 if selector.by == "size_mm2" else sizing.design_current_a
    return prices.select(selector.family or "", float(value or 0.0))


def _round_up(quantity: float, step: float) -> float:
    return round(math.ceil(quantity / step - 1e-9) * step, 6)


def _priced_line(
    line: AssemblyLine,
    assembly_id: str,
    drivers: Mapping[str, float],
    sizing: SizingResult,
    designs: TypicalDesigns,
    prices: PriceList,
    rated_kva: float | None = None,
) -> BomLine | None:
    raw_quantity = sum(coefficient * drivers[name] for name, coefficient in line.quantity.items())
    if raw_quantity <= 0:
        return None
    row = _resolve(line.material, sizing, prices, rated_kva)
    unit = designs.units.get(row.unit)
    if unit is None:
        raise CatalogueInvalidError(
            f"prices.csv: entry {row.material_code!r}, field 'unit': {row.unit!r} "
            "is not in typical_designs.toml [units]",
            file="prices.csv",
            entry=row.material_code,
            field="unit",
            error="unknown unit",
        )
    quantity = _round_up(raw_quantity, unit.step)
    amount = (Decimal(repr(quantity)) * row.unit_price_cny).quantize(_CENT, rounding=ROUND_HALF_UP)
    return BomLine(
        row.material_code, row.name_zh, row.name_en, row.unit, quantity, row.unit_price_cny, amount, assembly_id
    )


def build_bom(
    job_class: JobClass | str,
    sizing: SizingResult,
    route_length_m: float,
    crossings: Sequence[RoadCrossing],
    excavation: bool,
    area: Area | str,
    span_m: float | None = None,
    *,
    angle_poles: int = 0,
    access_kind: AccessKind = "pole",
    upgrade_kind: UpgradeKind = "uprate",
    unit_kind: UnitKind = "pole_mounted",
    rated_kva: float | None = None,
    mv_line_m: float = 0.0,
    designs: TypicalDesigns | None = None,
    prices: PriceList | None = None,
) -> Bom:
    """Build the priced bill of materials of a job from its typical design (R4.3; DOMAIN §4.2–4.3, §5.4).

    The design of ``job_class`` lists assemblies; each applies when its ``when`` table matches the job
    (meter wiring, installation, role, phases, area, excavation, access kind). Every line's quantity is
    a linear rule over :func:`quantity_drivers`, rounded up per unit; its material is found by code,
    by designation (e.g. the sized conductor) or by family and value range. No rule here names a
    designation: all of it is data.

    Parameters
    ----------
    job_class : str
        ``direct_meter``, ``overhead``, ``underground_cable`` or ``transformer_upgrade``.
    sizing : SizingResult
        A feasible result of :func:`~design_rules.sizing.size_conductor` or
        :func:`~design_rules.sizing.size_service_drop`.
    route_length_m : float
        Length of the new route in metres.
    crossings : sequence of (str, str)
        Roads crossed: ``(road name, road_class)``.
    excavation : bool
        Whether crossings are dug (掘路); when false they are pulled trenchless.
    area : {'urban', 'rural'}
        Chooses the pole type and the default span.
    span_m : float, optional
        Design span; the data default for ``area`` when omitted (pass the profile's span).
    angle_poles : int, optional
        Angle/strain poles along an overhead route (route bends); default 0.
    access_kind : {'pole', 'branch_box', 'transformer'}, optional
        What the new line leaves from; a cable leaving a pole needs a riser.
    upgrade_kind : {'uprate', 'new_transformer'}, optional
        A ``transformer_upgrade`` job uprates the existing transformer (default) or builds a new one by the
        load (issue 20 item 1e); other job classes ignore it.
    unit_kind : {'pole_mounted', 'box'}, optional
        The new unit's kind (柱上变台 or 箱变); only for ``new_transformer``.
    rated_kva : float, optional
        The new unit's rating: chooses the unit and JP-cabinet materials (``by = "rated_kva"``).
    mv_line_m : float, optional
        Length of the new 10 kV line to the unit, metres (driver ``mv_line_m``).
    designs : TypicalDesigns, optional
        Typical designs; the packaged file when omitted.
    prices : PriceList, optional
        Materials and prices; the packaged list when omitted.

    Returns
    -------
    Bom

    Raises
    ------
    InvalidInputError
        Unknown job class, infeasible sizing, a sizing that does not fit the design, bad geometry.
    CatalogueInvalidError
        A material the design needs is missing from the price list.

    Examples
    --------
    >>> from design_rules.sizing import size_conductor
    >>> s = size_conductor(50, 0.85, 3, 120, "overhead", 5.0)
    >>> bom = build_bom("overhead", s, 120, [], False, "urban", 50.0)
    >>> [line.quantity for line in bom.lines if line.material_code == "500201012"]
    [4.0]
    >>> bom.total_cny == sum(line.amount_cny for line in bom.lines)
    True
    """
    designs = designs or load_typical_designs()
    prices = prices or load_price_list()
    design = designs.designs.get(str(job_class))
    if design is None:
        raise InvalidInputError(f"unknown job class {job_class!r}", field="job_class", known=sorted(designs.designs))
    if not sizing.feasible:
        raise InvalidInputError(
            "the sizing is infeasible (no standard conductor); escalate before building a BOM", field="sizing"
        )
    if area not in designs.geometry.default_span_m:
        raise InvalidInputError(f"unknown area {area!r}", field="area", known=sorted(designs.geometry.default_span_m))
    context: dict[str, Any] = {
        "job_class": str(job_class),
        "meter_wiring": sizing.meter_wiring,
        "installation": sizing.installation,
        "role": sizing.role,
        "phases": sizing.phases,
        "area": str(area),
        "excavation": bool(excavation),
        "access_kind": access_kind,
        "upgrade_kind": upgrade_kind if str(job_class) == "transformer_upgrade" else "none",
        "unit_kind": unit_kind if upgrade_kind == "new_transformer" else "none",
    }
    if not _matches(design.requires, context):
        raise InvalidInputError(
            f"a {sizing.role}/{sizing.installation} sizing does not fit the {job_class} design",
            field="sizing",
            requires={key: list(values) for key, values in design.requires.items()},
        )
    drivers = quantity_drivers(
        sizing,
        route_length_m,
        crossings,
        excavation,
        span_m or designs.geometry.default_span_m[area],  # type: ignore[index]
        angle_poles=angle_poles,
        mv_line_m=mv_line_m if context["upgrade_kind"] == "new_transformer" else 0.0,
        designs=designs,
    )
    lines: list[BomLine] = []
    for assembly_id in design.assemblies:
        assembly = designs.assemblies[assembly_id]
        if not _matches(assembly.when, context):
            continue
        for line in assembly.lines:
            if _matches(line.when, context):
                priced = _priced_line(line, assembly_id, drivers, sizing, designs, prices, rated_kva)
                if priced is not None:
                    lines.append(priced)
    by_assembly: dict[str, Decimal] = {}
    for line in lines:
        by_assembly[line.assembly] = by_assembly.get(line.assembly, Decimal("0.00")) + line.amount_cny
    return Bom(
        job_class=str(job_class),
        lines=tuple(lines),
        total_cny=sum((line.amount_cny for line in lines), Decimal("0.00")),
        by_assembly=MappingProxyType(by_assembly),
        drivers=MappingProxyType(drivers),
    )


def bom_to_csv(bom: Bom) -> str:
    """Render the BOM lines as UTF-8 CSV text (one row per line, no total row).

    Examples
    --------
    >>> from design_rules.sizing import size_service_drop
    >>> bom = build_bom("direct_meter", size_service_drop(8, 0.9, 1, 20, "overhead", 2.0), 20, [], False, "urban")
    >>> bom_to_csv(bom).splitlines()[0]
    'assembly,material_code,name_zh,name_en,unit,quantity,unit_price_cny,amount_cny'
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for line in bom.lines:
        writer.writerow(
            [
                line.assembly,
                line.material_code,
                line.name_zh,
                line.name_en,
                line.unit,
                f"{line.quantity:g}",
                f"{line.unit_price_cny:.2f}",
                f"{line.amount_cny:.2f}",
            ]
        )
    return buffer.getvalue()


def bom_to_xlsx(bom: Bom) -> bytes:
    """Render the BOM as an Excel workbook: sheet ``BOM`` (lines and total) and ``By assembly``.

    Examples
    --------
    >>> from design_rules.sizing import size_service_drop
    >>> bom = build_bom("direct_meter", size_service_drop(8, 0.9, 1, 20, "overhead", 2.0), 20, [], False, "urban")
    >>> bom_to_xlsx(bom)[:2]
    b'PK'
    """
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "BOM"
    sheet.append(["分项 assembly", "物料编码", "物料名称", "name", "单位", "数量", "单价（元）", "金额（元）"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for line in bom.lines:
        sheet.append(
            [
                line.assembly,
                line.material_code,
                line.name_zh,
                line.name_en,
                line.unit,
                line.quantity,
                float(line.unit_price_cny),
                float(line.amount_cny),
            ]
        )
    sheet.append(["", "", "合计", "Total", "", None, None, float(bom.total_cny)])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for row in sheet.iter_rows(min_row=2, min_col=7, max_col=8):
        for cell in row:
            cell.number_format = "#,##0.00"
    for column, width in zip("ABCDEFGH", (24, 12, 44, 52, 6, 10, 12, 14), strict=True):
        sheet.column_dimensions[column].width = width
    summary = workbook.create_sheet("By assembly")
    summary.append(["分项 assembly", "金额（元）"])
    for assembly_id, amount in bom.by_assembly.items():
        summary.append([assembly_id, float(amount)])
    summary.append(["合计 total", float(bom.total_cny)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
