"""``pyproject.toml`` is true (issue 11 item 7): the shipped code imports exactly what it declares.

Every third-party module that ``app``, ``design_rules``, ``gis`` or ``migrations`` import belongs to a declared
runtime dependency; every declared runtime dependency is imported by that code, except the few that are
loaded by another library (named below, each with its reason in ``pyproject.toml``); test-only libraries
are in the ``test`` extra and never imported by the shipped code.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("app", "design_rules", "gis", "migrations")
FIRST_PARTY = {"app", "design_rules", "gis", "migrations", "tests"}
#: Declared, loaded by another library rather than imported by name.
LOADED_BY_OTHERS = {"psycopg": "SQLAlchemy's postgresql+psycopg driver", "python-multipart": "FastAPI's forms"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=~! ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return ({_name(r) for r in project["dependencies"]},
            {_name(r) for r in project["optional-dependencies"]["test"]})


def _imported_top_level(folders: tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY}


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    owners = packages_distributions()
    return {module: {d.lower().replace("_", "-") for d in owners.get(module, [])} for module in modules}


def test_every_module_the_shipped_code_imports_is_a_declared_runtime_dependency() -> None:
    runtime, _test = _declared()
    undeclared = {module: dists for module, dists in _distributions(_imported_top_level(SHIPPED)).items()
                  if not dists & runtime}
    assert undeclared == {}


def test_every_declared_runtime_dependency_is_imported_by_the_shipped_code() -> None:
    runtime, _test = _declared()
    imported = set().union(*_distributions(_imported_top_level(SHIPPED)).values())
    assert runtime - imported - set(LOADED_BY_OTHERS) == set()


def test_test_only_libraries_stay_out_of_the_shipped_code() -> None:
    runtime, test = _declared()
    shipped = set().union(*_distributions(_imported_top_level(SHIPPED)).values())
    assert (test - runtime) & shipped == set()
    used_by_tests = set().union(*_distributions(_imported_top_level(("tests", "benchmarks"))).values())
    assert {"geopandas", "rtree", "hypothesis", "pandapower"} <= used_by_tests & test
