"""The heads package's layout: one solver per name, options from HeadConfig (import cycles:
``tests/test_layout.py``)."""

from __future__ import annotations

from dataclasses import fields

import pytest

import cactus_features.heads as heads
from cactus_features.errors import ConfigError
from cactus_features.heads.config import CLI, SOLVERS, HeadConfig
from cactus_features.heads.solvers import SOLVER_TYPES

from .synthetic import make_features


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
        assert option.default is None  # unset: the preset's value, else the field default


def test_sweeps_reject_swept_fields_as_options() -> None:
    with pytest.raises(ConfigError, match="are swept"):
        heads.sweep_heads(make_features(n=50, d=4), lr=1e-3, save=False)


# That the CLI reads the head options without importing torch: tests/cli/test_imports.py
