"""Dependencies flow one way: app → design_rules → gis (the owner's architecture)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# gis may take a SQLAlchemy Connection to write (the bulk importer), but never opens sessions or serves HTTP.
FORBIDDEN = {"gis": {"app", "design_rules", "fastapi", "starlette"}, "design_rules": {"app", "fastapi", "sqlalchemy"}}


def _imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upper_layers(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_top_level_modules(path) & FORBIDDEN[package])
        for path in (REPO_ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}
