"""The heads package's layout: no import cycles, one solver per name, options from HeadConfig."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

import cactus_features.heads as heads
from cactus_features.errors import ConfigError
from cactus_features.heads.config import CLI, SOLVERS, HeadConfig
from cactus_features.heads.solvers import SOLVER_TYPES

from .synthetic import make_features

ROOT = Path(heads.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules of ``cactus_features.heads`` imported at module level (not under TYPE_CHECKING)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("cactus_features.heads"):
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("cactus_features.heads"))
    return out


def test_heads_modules_import_without_cycles() -> None:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {name: _runtime_imports(p) & set(paths) - {name} for name, p in paths.items()}
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


def test_every_solver_name_has_a_solver() -> None:
    assert set(SOLVER_TYPES) == set(SOLVERS)


def test_public_calls_document_every_head_option() -> None:
    names = [f.name for f in fields(HeadConfig)]
    for fn in (heads.train_head,):
        assert all(f"``{n}``" in fn.__doc__ or n == "head" for n in names), fn.__name__
    swept = {"lr", "weight_decay", "seed", "C", "tol"}
    assert all(f"``{n}``" in heads.sweep_heads.__doc__ for n in names if n not in swept)


def test_cli_options_are_the_head_config_fields() -> None:
    from cactus_features.cli.train import COMMON_FIELDS, TRAIN_FIELDS, train

    options = {p.name: p for p in train.params}
    for name in (*COMMON_FIELDS, *TRAIN_FIELDS):
        field = next(f for f in fields(HeadConfig) if f.name == name)
        option = options[name]
        spec = field.metadata[CLI]
        assert option.help == spec.help
        if not spec.head_default:
            assert option.default == field.default


def test_sweeps_reject_swept_fields_as_options() -> None:
    with pytest.raises(ConfigError, match="are swept"):
        heads.sweep_heads(make_features(n=50, d=4), lr=1e-3, save=False)


# That the CLI reads the head options without importing torch: tests/cli/test_imports.py
