"""The layering rules import-linter cannot state (the rest are in .importlinter, `make imports`).

Function-local and `if TYPE_CHECKING:` imports count everywhere: an import that runs late is
still a dependency, and a cycle of late imports is a design that only works by accident.
"""

from __future__ import annotations

import configparser
import itertools
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("himl_tasks", "flows", "scripts", "benchmarks")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One shortest cycle through each import that is part of a cycle, without repeats."""
    found: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = [importer, *back]
                found.setdefault(frozenset(cycle), cycle)
    return list(found.values())


def _described(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    steps = []
    for importer, imported in itertools.pairwise(cycle):
        lines = sorted(
            d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)
        )
        steps.append(f"{importer} -> {imported} (l.{', l.'.join(map(str, lines))})")
    return "\n    ".join(steps)


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    # import-linter's acyclic_siblings contract sees cycles between packages; this sees every
    # cycle between modules, a package's __init__ and its own submodules included.
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n  " + "\n  ".join(
        _described(graph, cycle) for cycle in cycles
    )


def test_azure_ai_ml_is_imported_only_by_the_sdk_v2_backend() -> None:
    # import-linter squashes external packages to their top level (`azure`, which storage's
    # azure-identity also is), so this rule reads the import lines themselves.
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)
    offending = [
        f"{d['importer']} l.{d['line_number']}: {d['line_contents']}"
        for importer in sorted(graph.find_modules_that_directly_import("azure"))
        if not importer.startswith("himl_tasks.backends.azureml_v2")
        for d in graph.get_import_details(importer=importer, imported="azure")
        if re.search(r"\bazure\.ai\.ml\b|\bfrom azure\.ai import ml\b", d["line_contents"])
    ]
    assert offending == []


def test_every_module_of_the_package_has_a_layer(graph: grimp.ImportGraph) -> None:
    # A module outside every layer would escape the layers contract unnoticed.
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layered = set(re.findall(r"himl_tasks\.\w+", config["importlinter:contract:layers"]["layers"]))
    assert sorted(graph.find_children("himl_tasks") - layered) == []


def test_the_package_imports_its_names_from_where_they_are_defined(
    graph: grimp.ImportGraph,
) -> None:
    # `from himl_tasks import X` inside the package goes through the lazy loader: the real
    # dependency (X's module, perhaps a layer above) would be invisible to these checks.
    importers = {
        f"{d['importer']} l.{d['line_number']}: {d['line_contents']}"
        for importer in graph.find_modules_that_directly_import("himl_tasks")
        if importer.startswith("himl_tasks.")
        for d in graph.get_import_details(importer=importer, imported="himl_tasks")
    }
    assert sorted(importers) == []
