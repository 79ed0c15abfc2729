"""The sketch content: frozen, validated models in local metres (x east, y north)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from design_rules.catalogue import JobClass

PointM = tuple[float, float]
"""A point in local metres ``(x_m, y_m)``: x east, y north."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExistingTransformer(_Model):
    """An existing distribution transformer (配变)."""

    label: str
    x_m: float
    y_m: float
    rated_kva: float | None = Field(default=None, gt=0)


class ExistingAccessPoint(_Model):
    """An existing LV pole or cable branch box.

    ``derived``: a branch box derived from the cable network's junctions and ends where the GIS has none
    (issue 20 item 1a): drawn with a dashed outline and labelled 待核实 until the project manager confirms it.
    """

    kind: Literal["pole", "branch_box"]
    x_m: float
    y_m: float
    label: str = ""
    derived: bool = False


class ExistingLine(_Model):
    """An existing LV overhead line or cable, as a polyline."""

    kind: Literal["overhead", "cable"]
    points_m: tuple[PointM, ...] = Field(min_length=2)
    label: str = ""


class NewRoute(_Model):
    """The new line of this job, with its length and whether a road is dug (掘路)."""

    kind: Literal["overhead", "cable", "service_drop", "service_cable", "mv_line"]
    points_m: tuple[PointM, ...] = Field(min_length=2)
    length_m: float = Field(gt=0)
    road_dug: bool
    label: str = ""


class NewPole(_Model):
    """A new pole of this job."""

    x_m: float
    y_m: float
    label: str = ""


class NewEquipment(_Model):
    """A new item of this job drawn as a symbol at its place (R4.4; issue 17 item 5).

    ``branch_box``: a new LV cable branch box (低压电缆分支箱) where the cable leaves the road for the
    customer; ``pole_riser``: the cable riser and terminations (电缆上杆) at the access pole;
    ``transformer_uprate``: the source transformer marked for uprating (配变增容改造); ``new_transformer``: a
    new unit by the load (新增配变) with its JP cabinet, fed by a new route of kind ``mv_line``. ``label`` is the
    BOM assembly's name, so the sheet and the bill use the same words.
    """

    kind: Literal["branch_box", "pole_riser", "transformer_uprate", "new_transformer"]
    x_m: float
    y_m: float
    label: str = ""


class MeterBox(_Model):
    """The meter box (计量箱), on the outside wall of the customer's building."""

    x_m: float
    y_m: float
    label: str = "计量箱"


class PropertyLine(_Model):
    """The customer's property red line (客户红线) as an axis-aligned rectangle in local metres."""

    x_min_m: float
    y_min_m: float
    x_max_m: float
    y_max_m: float

    @model_validator(mode="after")
    def _ordered(self) -> PropertyLine:
        if not (self.x_min_m < self.x_max_m and self.y_min_m < self.y_max_m):
            raise ValueError("need x_min_m < x_max_m and y_min_m < y_max_m")
        return self

    def corners_m(self) -> tuple[PointM, PointM, PointM, PointM]:
        """Return the corners counter-clockwise from the south-west corner."""
        return (
            (self.x_min_m, self.y_min_m),
            (self.x_max_m, self.y_min_m),
            (self.x_max_m, self.y_max_m),
            (self.x_min_m, self.y_max_m),
        )


class TitleBlock(_Model):
    """Title block: job, customer, job class, date (passed in), works quantities and funding.

    ``customer`` is ``None`` when the application names no customer: the title block then has no
    customer row rather than a placeholder (the job id identifies the sheet; issue 17 item 5).
    """

    job_id: str = Field(min_length=1)
    customer: str | None = Field(default=None, min_length=1)
    job_class: JobClass
    drawing_date: date
    total_cost_cny: Decimal | None = Field(default=None, ge=0)
    works_summary: tuple[str, ...] = ()


class DrawingInput(_Model):
    """Everything the sketch shows, in local metres (R4.4; CQ-32 annex 3).

    ``property_line`` defaults to a rectangle of the data's default size with the meter box in the
    middle of the side that faces the incoming route, i.e. on the outside wall. The new items (meter
    box, ``new_routes``, ``new_poles``, ``new_equipment``) are those the BOM charges for, each at its
    place; :meth:`new_item_kinds` names them in the vocabulary of the catalogue's ``drawn_as``.
    """

    title: TitleBlock
    meter_box: MeterBox
    transformers: tuple[ExistingTransformer, ...] = ()
    access_points: tuple[ExistingAccessPoint, ...] = ()
    existing_lines: tuple[ExistingLine, ...] = ()
    new_routes: tuple[NewRoute, ...] = ()
    new_poles: tuple[NewPole, ...] = ()
    new_equipment: tuple[NewEquipment, ...] = ()
    property_line: PropertyLine | None = None

    def new_item_kinds(self) -> frozenset[str]:
        """The kinds of new items drawn, as the typical designs' ``drawn_as`` names them.

        Examples
        --------
        >>> d = DrawingInput(
        ...     title=TitleBlock(job_id="J1", job_class="underground_cable", drawing_date=date(2024, 5, 6)),
        ...     meter_box=MeterBox(x_m=30, y_m=0),
        ...     new_routes=(NewRoute(kind="cable", points_m=((0, 0), (30, 0)), length_m=30, road_dug=True),),
        ...     new_equipment=(NewEquipment(kind="branch_box", x_m=15, y_m=0),))
        >>> sorted(d.new_item_kinds())
        ['branch_box', 'cable', 'meter_box']
        """
        kinds = {"meter_box", *(route.kind for route in self.new_routes), *(e.kind for e in self.new_equipment)}
        if self.new_poles:
            kinds.add("pole")
        return frozenset(kinds)
