"""The package's import graph: each stage imports only the stages below it, and no two stages import each other.

Layers, bottom up (a module may import its own folder and any lower layer, never a higher one): the shared
vocabulary; problems, analysis, execution; perturbations, validation; the perturb and dataset stages and the
metrics; training and evaluation; experiments and the attention report; the commands; the ``procure`` entry point.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "procure_trl"

LAYERS: dict[str, int] = {
    **dict.fromkeys(["errors", "concepts", "statuses", "hub", "provenance", "plotting", "configs", "_lazy",
                     "testing_utils"], 0),
    **dict.fromkeys(["problems", "analysis", "execution"], 1),
    **dict.fromkeys(["perturbations", "validation"], 2),
    **dict.fromkeys(["perturb", "dataset", "metrics"], 3),
    **dict.fromkeys(["training", "evaluation"], 4),
    **dict.fromkeys(["experiments", "attention_report"], 5),
    "commands": 6,
    "cli": 7,
}
#: What a module may take from the package root itself (the public API imports everything, so nothing else).
ROOT_NAMES = {"__version__"}


def _unit(module: str) -> str:
    """The top-level folder or module of ``procure_trl.<unit>...``."""
    return module.split(".")[1]


def _imports(path: Path) -> list[tuple[str, str]]:
    """``(imported unit, imported name)`` pairs of every absolute ``procure_trl`` import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("procure_trl"):
            if node.module == "procure_trl":
                found += [("", alias.name) for alias in node.names]
            else:
                found.append((_unit(node.module), node.module))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "procure_trl":
                    found.append(("", "procure_trl"))
                elif alias.name.startswith("procure_trl."):
                    found.append((_unit(alias.name), alias.name))
    return found


def _graph() -> dict[tuple[str, str], set[str]]:
    """``(importing unit, imported unit) -> {"module -> imported"}`` between different units."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "__init__" or "evaluate_modules" in parts:
            continue  # the public API and the evaluate modules (loaded by `evaluate`) stand outside the layers
        module = ".".join(("procure_trl",) + parts)
        for unit, name in _imports(path):
            if unit != parts[0]:
                edges[(parts[0], unit)].add(f"{module} -> {name}")
    return edges


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert units == set(LAYERS), f"add to LAYERS: {sorted(units - set(LAYERS))}; stale: {sorted(set(LAYERS) - units)}"


def test_no_import_goes_up_a_layer():
    upward = {f"{a} -> {b}": sorted(how)[:3] for (a, b), how in _graph().items()
              if b and LAYERS[b] > LAYERS[a]}
    assert not upward, upward


def test_the_package_root_is_imported_for_its_version_only():
    taken = {f"{a}: {how}" for (a, b), hows in _graph().items() if not b for how in hows
             if how.rsplit(" -> ", 1)[1] not in ROOT_NAMES}
    assert not taken, taken


def test_no_two_units_import_each_other():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in _graph():
        if b:
            graph[a].add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    circles = sorted(f"{a} <-> {b}" for a in list(graph) for b in graph[a] if reaches(b, a, {b}))
    assert not circles, circles


def test_the_root_holds_few_small_shared_modules():
    modules = [p for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    assert len(modules) <= 9, sorted(p.name for p in modules)  # the eight shared modules and the entry point
    large = {p.name: n for p in modules if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not large, large


def test_no_private_name_is_imported_across_units():
    """A name with a leading underscore is its module's business: another folder that needs it gets a public one."""
    private = []
    for path in PACKAGE.rglob("*.py"):
        unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("procure_trl."):
                if _unit(node.module) != unit:
                    private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private


def test_the_architecture_doc_names_every_module():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    unnamed = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if p.name != "__init__.py" and p.name not in doc)
    assert not unnamed, f"docs/architecture.md does not list {unnamed}"


def test_no_test_module_imports_another():
    """Shared test material lives in helper modules (conftest.py, mbpp_data.py, harness_rows.py, ...), so a test
    module can be read, moved or deleted on its own."""
    tests = PACKAGE.parent / "tests"
    imported = [f"{path.name}: {name}" for path in sorted(tests.glob("*.py"))
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                for name in ([a.name for a in node.names] if isinstance(node, ast.Import)
                             else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if name.split(".")[0].startswith("test_")]
    assert not imported, imported
