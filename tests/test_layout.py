"""The package's layout rules (docs/architecture.md): one seam per capability, no cycles.

Checked statically on the source, so a new module that breaks a rule fails here whether or
not any other test imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cactus_features

ROOT = Path(cactus_features.__file__).parent


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Every module named by an import in ``path``."""
    tree = ast.parse(path.read_text())
    if top_level_only:
        nodes: list[ast.AST] = []
        for node in tree.body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            nodes.append(node)
        candidates = [n for node in nodes for n in ast.walk(node) if _at_top(node, n)]
    else:
        candidates = list(ast.walk(tree))
    out: set[str] = set()
    for node in candidates:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import submodule`` imports the submodule (the package is
            # being initialised already); ``from pkg import name`` imports ``pkg``.
            subs = {f"{node.module}.{a.name}" for a in node.names}
            modules = subs & MODULES.keys()
            out.update(modules)
            if subs - modules:
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _at_top(root: ast.AST, node: ast.AST) -> bool:
    """``node`` runs at import time: it is ``root`` or inside a try/if at module level."""
    if node is root:
        return True
    if isinstance(root, ast.Try | ast.If):
        return any(node is child or _at_top(child, node) for child in ast.iter_child_nodes(root))
    return False


def test_no_import_cycle_between_modules() -> None:
    graph = {
        name: {m for m in _imports(path, top_level_only=True) if m in MODULES} - {name}
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, f"import cycle: {' -> '.join([*stack, name])}"
        state[name] = 1
        for dep in sorted(graph[name]):
            visit(dep, [*stack, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])


def _package_imports(package: str) -> dict[str, set[str]]:
    """Every import (lazy ones included) of each module under ``cactus_features.<package>``."""
    prefix = f"cactus_features.{package}"
    return {
        name: _imports(path, top_level_only=False)
        for name, path in MODULES.items()
        if name == prefix or name.startswith(prefix + ".")
    }


def test_only_store_imports_h5py() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if not name.startswith("cactus_features.store")
        and any(m == "h5py" or m.startswith("h5py.") for m in _imports(path, top_level_only=False))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("store", ("extract", "heads", "metrics", "report", "study", "cli", "backbones")),
        ("metrics", ("report", "heads", "extract", "study", "cli")),
        ("backbones", ("extract", "heads", "metrics", "report", "study", "cli", "store")),
        ("data", ("extract", "heads", "metrics", "report", "study", "cli", "store")),
        ("heads", ("extract", "metrics", "report", "study", "cli")),
    ],
)
def test_layers_only_import_downwards(package: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        (name, m)
        for name, imports in _package_imports(package).items()
        for m in imports
        for f in forbidden
        if m == f"cactus_features.{f}" or m.startswith(f"cactus_features.{f}.")
    }
    assert bad == set()


def _string_comparisons(path: Path) -> set[str]:
    """String constants compared with ``==``, ``!=`` or ``in`` / ``not in`` a literal tuple."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            values = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
            found.update(
                v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
    return found


def test_no_backbone_name_is_compared_outside_its_source() -> None:
    from cactus_features.backbones.registry import available_backbones

    names = set(available_backbones())
    offenders = {
        (name, s)
        for name, path in MODULES.items()
        if not name.startswith("cactus_features.backbones.sources")
        for s in _string_comparisons(path) & names
    }
    assert offenders == set()
