"""The import layers (talkbench.layers): every import, module-level or inside a function, goes down or sideways,
never up, never between the pairs kept apart, and never round a cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import talkbench
from talkbench.layers import APART, LAYERS, layer_index

ROOT = Path(talkbench.__file__).parent

# Known violations that other changes in flight remove (weights/ and faces/ layers, the leaderboards data model).
# Each entry is (importing module, imported module). The integrator empties this list after merging them.
ALLOWED: set[tuple[str, str]] = set()  # no known violation is left
ALLOWED_CYCLES: list[list[str]] = []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module → the talkbench modules it imports anywhere in its body (``from x import y`` counts y when y is a
    module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        # An import of a.b.c names the deepest talkbench module it reaches.
        resolved = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("talkbench.") and target != name:
                resolved.add(target)
        graph[name] = resolved
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "errors"  # the package's own __init__ sits at the bottom


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer():
    tops = {_top(m) for m in _modules()}
    missing = sorted(t for t in tops if not any(t in layer for layer in LAYERS))
    assert not missing, f"add {missing} to talkbench.layers.LAYERS"


def test_no_upward_import_and_the_pairs_stay_apart():
    bad = []
    for module, targets in import_graph().items():
        for target in sorted(targets):
            if (module, target) in ALLOWED:
                continue
            src, dst = _top(module), _top(target)
            if layer_index(dst) > layer_index(src):
                bad.append(f"{module} imports {target}: {dst} is above {src}")
            elif (src, dst) in APART:
                bad.append(f"{module} imports {target}: {src} never imports {dst}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for t in ts if (m, t) not in ALLOWED} for m, ts in import_graph().items()}
    # A package's __init__ re-exporting its own modules is not a cycle through it.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    assert [c for c in _cycles(graph) if c not in ALLOWED_CYCLES] == []


def test_the_walker_sees_function_level_upward_imports_and_cycles(tmp_path, monkeypatch):
    """The check itself can fail: a planted function-level upward import and a two-module cycle are both found."""
    pkg = tmp_path / "talkbench"
    for sub in ("manifests", "cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "manifests" / "a.py").write_text("def f():\n    from ..cli import b\n")
    (pkg / "cli" / "b.py").write_text("from ..manifests import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    monkeypatch.setattr(sys.modules[__name__], "ALLOWED", set())
    graph = import_graph()
    assert graph["talkbench.manifests.a"] == {"talkbench.cli.b"}
    assert graph["talkbench.cli.b"] == {"talkbench.manifests.a"}
    assert _cycles(graph) == [["talkbench.cli.b", "talkbench.manifests.a"]]
    with pytest.raises(AssertionError, match="manifests.a imports talkbench.cli.b: cli is above manifests"):
        test_no_upward_import_and_the_pairs_stay_apart()
