"""A batched sweep picks the grid point, with the same scores, that a loop of train_head picks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cactus_features.errors import ConfigError
from cactus_features.heads import sweep_heads, train_head
from cactus_features.runfile import load_run

from .synthetic import make_features


def loop_choice(results: list) -> int:
    """The same criterion, applied to separately trained heads."""
    return max(range(len(results)), key=lambda i: (results[i].val_auc, -_val_loss(results[i]), -i))


def _val_loss(result) -> float:
    return float(result.history["val_loss"][result.best_epoch - 1])


@pytest.mark.parametrize(
    ("head", "options"),
    [("linear", {}), ("mlp", {"hidden": (16,), "dropout": 0.2})],
)
def test_sweep_picks_what_a_loop_picks(head: str, options: dict, tmp_path: Path) -> None:
    fs = make_features(n=400, d=16, signal=1.5)
    lrs = (1e-1, 3e-2, 1e-2) if head == "linear" else (3e-2, 1e-2, 3e-3)
    wds, seeds = (0.0, 3e-2), (0, 1)
    epochs = 60 if head == "linear" else 25
    sweep = sweep_heads(
        fs, lrs=lrs, weight_decays=wds, seeds=seeds, head=head, epochs=epochs,
        out=tmp_path, **options,
    )  # fmt: skip
    loop = [
        train_head(fs, head=head, epochs=epochs, lr=lr, weight_decay=wd, seed=seed, save=False,
                   **options)
        for lr in lrs for wd in wds for seed in seeds
    ]  # fmt: skip
    assert len(sweep.grid) == len(loop) == 12
    for row, single in zip(sweep.grid, loop, strict=True):
        assert row["best_epoch"] == single.best_epoch
        assert row["val_auc"] == pytest.approx(single.val_auc, abs=1e-5)
    best = loop_choice(loop)
    assert sweep.best_index == best
    chosen = loop[best]
    assert (sweep.config.lr, sweep.config.weight_decay, sweep.config.seed) == (
        chosen.config.lr, chosen.config.weight_decay, chosen.config.seed,
    )  # fmt: skip
    np.testing.assert_allclose(sweep.best.predictions.score, chosen.predictions.score, atol=1e-5)
    assert sweep.best.run.config == chosen.run.config
    # a spread of outcomes, so choosing is not trivial
    assert len({round(r["val_auc"], 4) for r in sweep.grid}) > 3


def test_sweep_outputs_grid_csv_and_info(tmp_path: Path) -> None:
    fs = make_features(n=200, d=8)
    result = sweep_heads(fs, lrs=(1e-2, 1e-3), seeds=(0, 1, 2), epochs=10, out=tmp_path)
    assert result.path is not None and result.path.name.startswith("synthetic@32__sweep-linear-")
    assert result.grid_path == result.path.with_suffix(".grid.csv")
    with open(result.grid_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and float(rows[3]["lr"]) == 1e-3 and int(rows[3]["seed"]) == 0
    run = load_run(result.path)
    assert run.info["sweep"]["selected"] == result.best_index
    assert len(run.info["sweep"]["grid"]) == 6
    assert run.info["best_epoch"] == result.grid[result.best_index]["best_epoch"]
    assert run.config["lr"] == result.grid[result.best_index]["lr"]
    assert result.seconds_per_head == pytest.approx(result.seconds / 6)


def test_groups_of_heads_give_the_same_grid() -> None:
    fs = make_features(n=200, d=8)
    kwargs = {"lrs": (1e-2, 1e-3), "seeds": (0, 1), "epochs": 10, "head": "mlp",
              "hidden": (8,), "save": False}  # fmt: skip
    whole = sweep_heads(fs, **kwargs)
    split = sweep_heads(fs, max_group=3, **kwargs)
    for a, b in zip(whole.grid, split.grid, strict=True):
        assert a["best_epoch"] == b["best_epoch"]
        assert a["val_auc"] == pytest.approx(b["val_auc"], abs=1e-6)
    assert whole.best_index == split.best_index


def test_sweep_rejects_lbfgs_and_empty_grids() -> None:
    fs = make_features(n=100, d=4)
    with pytest.raises(ConfigError, match="Adam"):
        sweep_heads(fs, solver="lbfgs", save=False)
    with pytest.raises(ConfigError, match="empty sweep"):
        sweep_heads(fs, lrs=(), save=False)


def test_choice_breaks_auc_ties_by_lower_validation_loss() -> None:
    from cactus_features.heads.sweep import choose

    grid = [
        {"val_auc": 0.90, "val_loss": 0.30},
        {"val_auc": 0.95, "val_loss": 0.40},
        {"val_auc": 0.95, "val_loss": 0.35},
        {"val_auc": float("nan"), "val_loss": 0.10},
    ]
    assert choose(grid, "val_auc") == 2
    assert choose(grid, "last") == 2
    assert choose(grid, "val_loss") == 3
