"""The architecture contracts of ``pyproject.toml`` (import-linter) hold, and each one catches a real break.

The contracts (issue 11): ``app`` → ``design_rules`` → ``gis``; inside ``app`` entry points → routers →
wiring → contexts → platform; no router imports another router; the CLI builds its tables with
``app.wiring`` instead of importing the app for its side effects. ``scripts/test`` runs ``lint-imports``
itself; here each historical break (as found on main before the restructure) is put back into the real
import graph and must be reported by the contract that forbids it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from importlinter import configuration
from importlinter.application import use_cases
from importlinter.application.app_config import settings

REPO = Path(__file__).resolve().parents[1]


class _GraphWithExtraImport:
    """Builds the real graph of the source tree, then adds one import (``None``: the tree as it is)."""

    def __init__(self, real: Any, extra: tuple[str, str] | None) -> None:
        self._real, self._extra = real, extra

    def build(self, root_package_names: list[str], cache_dir: str | None, include_external_packages: bool = False,
              exclude_type_checking_imports: bool = False) -> Any:
        graph = self._real.build(root_package_names, None, include_external_packages, exclude_type_checking_imports)
        if self._extra is not None:
            importer, imported = self._extra
            graph.add_import(importer=importer, imported=imported, line_number=1,
                             line_contents=f"from {imported} import *")
        return graph


def _contracts_kept(extra: tuple[str, str] | None, monkeypatch: pytest.MonkeyPatch, *contract_ids: str) -> bool:
    """Run import-linter on the repository (with ``extra`` added to its graph); True if the contracts hold."""
    configuration.configure()
    monkeypatch.chdir(REPO)
    settings.configure(GRAPH_BUILDER=_GraphWithExtraImport(settings.GRAPH_BUILDER, extra))
    try:
        return use_cases.lint_imports(str(REPO / "pyproject.toml"), limit_to_contracts=contract_ids, cache_dir=None,
                                      is_debug_mode=True, no_logo=True)
    finally:
        configuration.configure()


def test_the_tree_keeps_every_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _contracts_kept(None, monkeypatch)


@pytest.mark.parametrize(("importer", "imported", "contract"), [
    # the three breaks of main before the restructure
    ("app.lifecycle.states", "app.api.designs", "rooms"),         # a service importing a router
    ("app.api.terminal", "app.api.applications", "routers"),      # a router importing a router's helpers
    ("app.cli", "app.main", "cli-tables"),                        # the CLI importing the app to register jobs
    # and the package layers
    ("gis.siting", "design_rules.profiles", "packages"),
    ("design_rules.design", "app.settings", "packages"),
    ("gis.routing", "fastapi", "no-web-in-gis"),
    ("design_rules.bom", "sqlalchemy", "no-io-in-rules"),
    ("app.platform.deps", "app.network.siting", "rooms"),         # platform knows no business context
    ("app.network.siting", "app.design.service", "rooms"),        # the network knows nothing of designs
    ("app.planning.capacity", "app.lifecycle.states", "rooms"),  # sibling contexts stay independent
])
def test_a_deliberately_broken_import_fails_its_contract(importer: str, imported: str, contract: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert _contracts_kept(None, monkeypatch, contract)
    assert not _contracts_kept((importer, imported), monkeypatch, contract)
    assert f"{importer} -> {imported}" in capsys.readouterr().out
