"""The works sketch 工程建设简图 (R4.4; CQ-32 annex 3) as SVG, GeoJSON and DXF from local-metre input.

:mod:`.model` holds the input models, :mod:`.layout` the geometry and labels the renderers share,
and :mod:`.svg`, :mod:`.geojson` and :mod:`.dxf` one output format each; the names below are the
package's public interface.
"""

from design_rules.drawing.dxf import DXF_LAYERS, render_dxf
from design_rules.drawing.geojson import ToWgs84, render_geojson
from design_rules.drawing.layout import property_line_of, route_label
from design_rules.drawing.model import (
    DrawingInput,
    ExistingAccessPoint,
    ExistingLine,
    ExistingTransformer,
    MeterBox,
    NewEquipment,
    NewPole,
    NewRoute,
    PointM,
    PropertyLine,
    TitleBlock,
)
from design_rules.drawing.svg import render_svg

__all__ = [
    "DXF_LAYERS",
    "DrawingInput",
    "ExistingAccessPoint",
    "ExistingLine",
    "ExistingTransformer",
    "MeterBox",
    "NewEquipment",
    "NewPole",
    "NewRoute",
    "PointM",
    "PropertyLine",
    "TitleBlock",
    "ToWgs84",
    "property_line_of",
    "render_dxf",
    "render_geojson",
    "render_svg",
    "route_label",
]
