"""The package's import graph: declared layers, no upward import, no cycle.

Every module of src/refine is parsed (not imported) and each `refine.*` import is resolved to the module it
loads: `from refine.x import y` is the module `refine.x.y` when that file exists, else `refine.x`; relative
imports are resolved against the importing package. Lazy imports (inside functions, under `TYPE_CHECKING`)
count like top-level ones: deferring an import defers its cost, not the dependency. The parent packages that
Python initialises on the way (`refine/__init__.py` for every `refine.*` import) are not counted as edges.

A *unit* is a subpackage (`refine.models`) or a top-level module (`refine.atomic`); the root package's own
`__init__` is the unit `refine`. A unit may import only units of a lower layer.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. Units in one tuple are peers: neither may import the other.
LAYERS: list[tuple[str, ...]] = [
    ("atomic", "logs", "config", "workflow_config"),  # leaves: no refine imports (workflow_config: the Snakefile's)
    ("ops",),  # kernels
    ("models",),  # DeltaNet, LaCT, caches over the kernels
    ("data", "rl", "refine"),  # data preparation; the method; the root package (registers the models)
    ("version", "checkpoint", "experiment"),  # code fingerprint; model loading; experiment identity
    ("evaluate",),  # generation, metrics, records, cells
    ("train", "report"),  # stages (TTT runs inside evaluation); tables, figures, claims
    ("bench",),  # timing and memory of the training steps
    ("commands",),  # one module per CLI group
    ("cli",),
]
# Modules of one unit that are peers (neither may import the other).
PEERS = {"models": [("deltanet", "lact")]}
# Known violations, each to be removed when fixed. The test fails when one disappears, so the list only shrinks
# (the ops -> models and lact -> deltanet edges of issue 15 are gone: refine.ops.fla is the fla gateway with a
# registration hook, GatedMLP lives in refine.models.mlp).
KNOWN: set[tuple[str, str]] = set()


@functools.cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package) for every module under src/refine."""
    found = {}
    for path in sorted((SRC / "refine").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return found


def imported(source: str, name: str, is_pkg: bool, mods: dict) -> set[str]:
    """The refine modules that module `name` (with this source) imports, lazy ones and
    `importlib.import_module("refine...")` (an f-string counts as its constant prefix) included."""

    def resolve(target: str) -> str:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        return target

    package = name if is_pkg else name.rpartition(".")[0]
    targets = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                arg = arg.values[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                targets.append(arg.value.rstrip("."))
    return {r for t in targets if t.split(".")[0] == "refine" and (r := resolve(t)) not in ("", name)}


@functools.cache
def import_edges() -> frozenset[tuple[str, str]]:
    """(importer, imported) module pairs over the whole package."""
    mods = modules()
    return frozenset(
        (name, target)
        for name, (path, is_pkg) in mods.items()
        for target in imported(path.read_text(encoding="utf-8"), name, is_pkg, mods)
    )


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "refine"


def rank() -> dict[str, int]:
    return {u: i for i, layer in enumerate(LAYERS) for u in layer}


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                on_stack.discard(w)
                component.append(w)
            on_stack.discard(v)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(edges: set[tuple[str, str]]) -> list[str]:
    """Edges that import upward or sideways between units, or between peer modules."""
    ranks = rank()
    bad = []
    for a, b in sorted(edges):
        ua, ub = unit(a), unit(b)
        if ua != ub and ranks[ub] >= ranks[ua]:
            bad.append(f"{a} -> {b} ({ua} may not import {ub})")
        for left, right in PEERS.get(ua, []) if ua == ub else []:
            names = {a.split(".")[-1], b.split(".")[-1]}
            if names == {left, right}:
                bad.append(f"{a} -> {b} (peers)")
    return bad


def test_parser_resolves_lazy_and_relative_imports():
    mods = dict.fromkeys(["refine", "refine.a", "refine.a.x", "refine.a.y", "refine.b", "refine.c", "refine.d"])
    source = (
        "import os\nfrom . import y\nfrom .y import f\nfrom refine.b import g\n"
        "def h():\n    import refine.c.missing\n    importlib.import_module(f'refine.d.{n}')\n"
    )
    assert imported(source, "refine.a.x", False, mods) == {"refine.a.y", "refine.b", "refine.c", "refine.d"}
    assert imported("from .a import x\nfrom refine import v", "refine", True, mods) == {"refine.a.x"}
    edges = import_edges()
    assert ("refine.checkpoint", "refine.models") in edges  # inside a function: loading registers the models
    assert any(a == "refine.cli" and unit(b) == "commands" for a, b in edges)  # importlib, inside a function
    assert len(edges) > 100


def test_every_unit_is_declared_once():
    declared = [u for layer in LAYERS for u in layer]
    assert len(declared) == len(set(declared))
    undeclared = {unit(m) for m in modules()} - set(declared)
    assert not undeclared, f"declare {sorted(undeclared)} in LAYERS"


def test_no_upward_import():
    bad = violations(import_edges() - KNOWN)
    assert not bad, "\n".join(bad)


def test_known_violations_still_exist():
    gone = KNOWN - import_edges()
    assert not gone, f"fixed: remove {sorted(gone)} from KNOWN"


def test_no_import_cycle():
    edges = import_edges() - KNOWN
    assert not cycles(edges), cycles(edges)
    units = {(unit(a), unit(b)) for a, b in edges if unit(a) != unit(b)}
    assert not cycles(units), cycles(units)


def test_checks_catch_violations():
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert violations({("refine.ops.x", "refine.models.y")}) == [
        "refine.ops.x -> refine.models.y (ops may not import models)"
    ]
    assert violations({("refine.data.x", "refine.rl.y")})  # peers
    assert violations({("refine.models.lact", "refine.models.deltanet")})
    assert not violations({("refine.models.lact", "refine.models.base"), ("refine.cli", "refine.logs")})
