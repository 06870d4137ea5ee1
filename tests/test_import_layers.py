"""Import layering: the modules named below never import each other both ways, lazily or not.

A cycle hidden in a function-level import still ties two modules together (neither can be
understood, tested or moved alone) and breaks at import time as soon as someone hoists the
import. Base modules (``files``, ``errors``, ``applied``, ``results``) import no module that
does work.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """``qeval.report._json`` -> ``qeval.report``: a package counts as one unit."""
    return ".".join(module.split(".")[:2])


def _imports() -> dict[str, set[str]]:
    """unit -> units it imports anywhere in its code (function-level imports included)."""
    out: dict[str, set[str]] = {}
    for path in (SRC / "qeval").rglob("*.py"):
        unit = _unit(_module_of(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("qeval.") and _unit(name) != unit:
                    out.setdefault(unit, set()).add(_unit(name))
    return out


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        unit = todo.pop()
        if unit == goal:
            return True
        if unit not in seen:
            seen.add(unit)
            todo.extend(graph.get(unit, ()))
    return False


@pytest.mark.parametrize("a, b", [
    ("qeval.compare", "qeval.report"),
    ("qeval.environment", "qeval.report"),
    ("qeval.compare", "qeval.environment"),
    ("qeval.models", "qeval.checkpoint"),
    ("qeval.sweep", "qeval.resume"),
    ("qeval.perf", "qeval.load"),
    ("qeval.targets", "qeval.engines"),
])
def test_no_cycle_between(a, b):
    graph = _imports()
    assert not (_reaches(graph, a, b) and _reaches(graph, b, a)), f"{a} and {b} import each other (via {graph.get(a)})"


@pytest.mark.parametrize("base", ["qeval.files", "qeval.errors", "qeval.applied"])
def test_base_modules_stay_at_the_bottom(base):
    allowed = {"qeval.errors", "qeval._settings_record", "qeval.config", "qeval.files"}
    assert _imports().get(base, set()) <= allowed
