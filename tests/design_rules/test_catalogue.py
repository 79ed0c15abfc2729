"""Catalogue data files load, agree with DOMAIN.md figures, and fail loudly naming file, entry and field."""

from __future__ import annotations

import csv
import io
from contextlib import nullcontext
from pathlib import Path

import pytest

from design_rules.catalogue import (
    QUANTITY_DRIVERS,
    CatalogueInvalidError,
    load_conductors,
    load_price_list,
    load_sizing_rules,
    load_typical_designs,
)
from design_rules.sizing import derated_ampacity_a
from gis.errors import NotFoundError, SanlingError

DATA_DIR = Path(__file__).parents[2] / "design_rules" / "data"


def test_default_files_load_and_are_cached() -> None:
    assert load_conductors() is load_conductors()
    assert len(load_conductors()) >= 30
    assert load_sizing_rules().resistance.conductor_temperature_c == 70.0
    assert set(load_typical_designs().designs) == {
        "direct_meter",
        "overhead",
        "underground_cable",
        "transformer_upgrade",
    }
    assert len(load_price_list().rows) > 50


@pytest.mark.parametrize(
    ("designation", "r20_ohm_per_km", "ampacity_air_a"),
    [
        ("JKLYJ-1kV-70", 0.443, 215),  # DOMAIN §3.3 row 70
        ("JKLYJ-1kV-240", 0.125, 490),  # DOMAIN §3.3 row 240
        ("YJV22-0.6/1kV-4x95", 0.193, 235),  # DOMAIN §3.4 Cu 4×95
        ("YJLV22-0.6/1kV-4x150", 0.206, 231),  # DOMAIN §3.4 Al 4×150
        ("YJV22-0.6/1kV-4x240", 0.0754, 396),  # DOMAIN §3.4 Cu 4×240
    ],
)
def test_conductor_figures_match_domain(designation: str, r20_ohm_per_km: float, ampacity_air_a: float) -> None:
    conductor = load_conductors()[designation]
    assert conductor.r20_ohm_per_km == r20_ohm_per_km
    assert conductor.ampacity_air_a == ampacity_air_a


def test_every_conductor_has_source_and_consistent_verification() -> None:
    for conductor in load_conductors().values():
        assert conductor.source
        assert conductor.verified is (not conductor.unverified_fields)


def test_buried_ampacity_within_domain_band() -> None:
    # DOMAIN §3.4: buried 4-core LV cables are 5–20 % above the in-air figure (TU).
    for conductor in load_conductors().values():
        if conductor.ampacity_ground_a is not None:
            assert 1.05 <= conductor.ampacity_ground_a / conductor.ampacity_air_a <= 1.20, conductor.designation


def test_every_conductor_has_a_sizing_method_and_temperature_table() -> None:
    rules = load_sizing_rules()
    for conductor in load_conductors().values():
        for role in conductor.roles:
            ampacity_a, factor = derated_ampacity_a(conductor, conductor.installation, role, rules=rules)
            assert 0 < factor <= 1.2 and ampacity_a > 0


def test_every_conductor_and_meter_has_a_price() -> None:
    prices = load_price_list()
    for designation in load_conductors():
        assert prices.by_designation(designation).unit == "m"
    for meter in load_sizing_rules().metering.meters:
        assert prices.by_designation(meter.designation).unit == "pc"
    for primary_a in load_sizing_rules().metering.ct_primaries_a:
        prices.by_designation(f"LMZJ1-0.66 {primary_a}/5")


def test_price_units_are_declared_and_codes_look_like_erp_codes() -> None:
    units = load_typical_designs().units
    for row in load_price_list().rows.values():
        assert row.unit in units
        assert row.material_code.startswith("500") and len(row.material_code) == 9
        assert row.source


def test_typical_design_lines_use_only_known_drivers_and_materials() -> None:
    designs, prices = load_typical_designs(), load_price_list()
    for assembly in designs.assemblies.values():
        for line in assembly.lines:
            assert set(line.quantity) <= QUANTITY_DRIVERS
            if line.material.code:
                prices.by_code(line.material.code)
            if line.material.family:
                assert any(row.family == line.material.family for row in prices.rows.values())


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _conductors_with(old: str, new: str) -> str:
    text = (DATA_DIR / "conductors.toml").read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "expectation", "entry", "field"),
    [
        # unchanged file loads
        ("r20_ohm_per_km = 0.641", "r20_ohm_per_km = 0.641", nullcontext(), None, None),
        # negative resistance on the first entry
        (
            "r20_ohm_per_km = 0.641",
            "r20_ohm_per_km = -0.641",
            pytest.raises(CatalogueInvalidError),
            "JKLYJ-1kV-50",
            "r20_ohm_per_km",
        ),
        # unknown material
        ('material = "Al"', 'material = "Fe"', pytest.raises(CatalogueInvalidError), "JKLYJ-1kV-50", "material"),
        # a field the schema does not know
        ("cores = 1", "cores = 1\ncolour = 1", pytest.raises(CatalogueInvalidError), "JKLYJ-1kV-50", "colour"),
    ],
)
def test_bad_conductor_file_names_file_entry_field(
    tmp_path: Path, old: str, new: str, expectation: object, entry: str | None, field: str | None
) -> None:
    path = _write(tmp_path, "conductors.toml", _conductors_with(old, new))
    with expectation as caught:  # type: ignore[attr-defined]
        load_conductors(path)
    if entry is not None:
        error = caught.value
        assert isinstance(error, SanlingError) and error.code == "CATALOGUE_INVALID"
        assert error.details["file"] == "conductors.toml"
        assert error.details["entry"] == entry
        assert error.details["field"] == field
        assert "conductors.toml" in error.message and entry in error.message


def test_cable_without_buried_ampacity_is_refused(tmp_path: Path) -> None:
    text = _conductors_with("ampacity_ground_a = 124\nampacity_ground_base_c = 25.0\n", "")
    with pytest.raises(CatalogueInvalidError) as caught:
        load_conductors(_write(tmp_path, "conductors.toml", text))
    assert caught.value.details["entry"] == "YJV22-0.6/1kV-4x25"
    assert "ampacity_ground_a" in caught.value.message


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueInvalidError, match="not valid TOML"):
        load_sizing_rules(_write(tmp_path, "sizing_rules.toml", "[voltage\n"))
    with pytest.raises(CatalogueInvalidError, match="cannot be read"):
        load_typical_designs(tmp_path / "absent.toml")


def test_bad_price_row_names_row_and_field(tmp_path: Path) -> None:
    with (DATA_DIR / "prices.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[3][rows[0].index("unit_price_cny")] = "-1.00"  # file row 4
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    with pytest.raises(CatalogueInvalidError) as caught:
        load_price_list(_write(tmp_path, "prices.csv", buffer.getvalue()))
    assert caught.value.details["entry"] == "row 4"
    assert caught.value.details["field"] == "unit_price_cny"


def test_duplicate_price_code_is_refused(tmp_path: Path) -> None:
    lines = (DATA_DIR / "prices.csv").read_text(encoding="utf-8").splitlines()
    with pytest.raises(CatalogueInvalidError, match="repeats"):
        load_price_list(_write(tmp_path, "prices.csv", "\n".join([*lines, lines[1]])))


def test_design_referring_to_unknown_assembly_is_refused(tmp_path: Path) -> None:
    text = (DATA_DIR / "typical_designs.toml").read_text(encoding="utf-8")
    text = text.replace('"overhead_poles", "overhead_conductor"]', '"overhead_poles", "flying_carpet"]', 1)
    with pytest.raises(CatalogueInvalidError, match="flying_carpet"):
        load_typical_designs(_write(tmp_path, "typical_designs.toml", text))


def test_unknown_designation_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        load_conductors()["JKLYJ-1kV-999"]
