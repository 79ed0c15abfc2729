"""Engineering catalogues as validated data: conductors, sizing rules, typical designs and prices.

One module per packaged data file (:mod:`.conductors`, :mod:`.sizing_rules`, :mod:`.designs`,
:mod:`.prices`); :mod:`.base` holds the shared vocabularies, :class:`CatalogueInvalidError` and the
one loader, :class:`CatalogueFile`. Import from ``design_rules.catalogue``: the names below are the
package's interface.
"""

from design_rules.catalogue.base import (
    JOB_CLASSES,
    Area,
    CatalogueFile,
    CatalogueInvalidError,
    DataPath,
    Installation,
    JobClass,
    Material,
    Medium,
    MeterWiring,
    Role,
    Surface,
)
from design_rules.catalogue.conductors import Conductor, ConductorCatalogue, load_conductors
from design_rules.catalogue.designs import (
    CONTEXT_KEYS,
    QUANTITY_DRIVERS,
    Assembly,
    AssemblyLine,
    Design,
    DesignGeometry,
    DesignsMeta,
    DrawingStyle,
    MaterialSelector,
    RoadClassRule,
    TypicalDesigns,
    UnitRule,
    load_typical_designs,
)
from design_rules.catalogue.prices import PriceList, PriceRow, load_price_list
from design_rules.catalogue.sizing_rules import (
    DeratingFactor,
    InstallationMethod,
    MeteringRules,
    MeterType,
    ResistanceRules,
    SizingRules,
    TemperatureFactorTable,
    VoltageRules,
    load_sizing_rules,
)

__all__ = [
    "CONTEXT_KEYS",
    "JOB_CLASSES",
    "QUANTITY_DRIVERS",
    "Area",
    "Assembly",
    "AssemblyLine",
    "CatalogueFile",
    "CatalogueInvalidError",
    "Conductor",
    "ConductorCatalogue",
    "DataPath",
    "DeratingFactor",
    "Design",
    "DesignGeometry",
    "DesignsMeta",
    "DrawingStyle",
    "Installation",
    "InstallationMethod",
    "JobClass",
    "Material",
    "MaterialSelector",
    "Medium",
    "MeterType",
    "MeterWiring",
    "MeteringRules",
    "PriceList",
    "PriceRow",
    "ResistanceRules",
    "RoadClassRule",
    "Role",
    "SizingRules",
    "Surface",
    "TemperatureFactorTable",
    "TypicalDesigns",
    "UnitRule",
    "VoltageRules",
    "load_conductors",
    "load_price_list",
    "load_sizing_rules",
    "load_typical_designs",
]
