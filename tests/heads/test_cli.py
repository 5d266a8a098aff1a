"""The ``train`` and ``sweep`` commands, run through the real CLI group."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cactus_features.cli import cli
from cactus_features.cli.train import COMMANDS
from cactus_features.runfile import load_run

from .synthetic import make_features, write_cache


@pytest.fixture
def run_cli():
    for command in COMMANDS:
        cli.add_command(command)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args])


def test_train_prints_one_line_per_cache(run_cli, tmp_path: Path) -> None:
    fa = make_features(n=200, d=8)
    fb = replace(fa, key={"backbone": "other", "resolution": 64})
    a = write_cache(tmp_path / "a.h5", fa)
    b = write_cache(tmp_path / "b.h5", fb)
    result = run_cli("train", a, b, "--epochs", 20, "--lr", 0.01, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("synthetic@32 [adam]: 20 epochs, best epoch ")
    assert lines[1].startswith("other@64 [adam]: 20 epochs, best epoch ")
    assert "class weights [0.7500, 0.2500] (inverse)" in lines[0]
    run_path = Path(lines[0].rsplit(" -> ", 1)[1])
    run = load_run(run_path)
    assert run_path.parent == tmp_path / "runs"
    assert f"best epoch {run.info['best_epoch']} (" in lines[0]
    assert f"val AUC {run.info['val_auc']:.4f}" in lines[0]


def test_train_defaults_to_the_tuned_protocol_and_takes_a_preset(run_cli, cache_file: Path) -> None:
    result = run_cli("train", cache_file, "--quiet")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("synthetic@32 [tuned]: chose l2 ") and " of 9 (converged" in line
    run = load_run(Path(line.rsplit(" -> ", 1)[1]))
    assert run.config["preset"] == "tuned" and run.info["grid"]["criterion"] == "val_loss"
    result = run_cli("train", cache_file, "--preset", "report", "--epochs", 7, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("synthetic@32 [report (epochs=7)]: 7 epochs, best epoch ")
    result = run_cli("train", cache_file, "--preset", "tuned", "--lr", 0.1)
    assert result.exit_code == 2 and "only apply to --solver adam" in result.stderr


def test_train_options_reach_the_run(run_cli, cache_file: Path) -> None:
    result = run_cli(
        "train", cache_file, "--head", "mlp", "--hidden", "8,4", "--dropout", 0.1,
        "--epochs", 5, "--class-weight", "0.6,0.4", "--select", "last", "--seed", 2,
        "--no-standardize", "--preset", "report", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = load_run(Path(result.stdout.strip().rsplit(" -> ", 1)[1]))
    assert run.config["hidden"] == [8, 4] and run.config["dropout"] == 0.1
    assert run.config["class_weight"] == [0.6, 0.4] and run.info["class_weight_mode"] == "explicit"
    assert run.config["seed"] == 2 and run.info["best_epoch"] == 5 and run.standardize == {}


def test_train_concat_and_lbfgs(run_cli, tmp_path: Path) -> None:
    fa = make_features(n=200, d=8)
    fb = replace(
        fa,
        key={"backbone": "other", "resolution": 64},
        _embeddings=np.random.default_rng(0).standard_normal((200, 4)).astype("f4"),
    )
    a = write_cache(tmp_path / "a.h5", fa)
    b = write_cache(tmp_path / "b.h5", fb)
    result = run_cli("train", a, b, "--concat", "--solver", "lbfgs", "--C", 0.5, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthetic@32+other@64 [lbfgs]: ")
    run = load_run(Path(lines[0].rsplit(" -> ", 1)[1]))
    assert run.info["dim"] == 12 and run.config["solver"] == "lbfgs" and run.config["C"] == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class-weight", "heavy"], "class weight 'heavy' is invalid"),
        (["--hidden", "8"], "apply to --head mlp only"),
        (["--epochs", "0"], "epochs=0"),
        (["--concat"], "--concat needs two or more caches"),
    ],
)
def test_user_errors_exit_2_with_one_line(run_cli, cache_file: Path, args, message) -> None:
    result = run_cli("train", cache_file, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_missing_cache_is_a_cache_error(run_cli, tmp_path: Path) -> None:
    result = run_cli("train", tmp_path / "nope.h5")
    assert result.exit_code == 2 and "no such cache file" in result.stderr


def test_sweep_command(run_cli, cache_file: Path) -> None:
    result = run_cli(
        "sweep", cache_file, "--lr", 0.01, "--lr", 0.001, "--weight-decay", 0,
        "--weight-decay", 0.01, "--seed", 0, "--epochs", 10, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("synthetic@32: 4 heads in ") and "s/head" in line
    grid = Path(line.rsplit("(grid: ", 1)[1].rstrip(")"))
    assert grid.is_file() and len(grid.read_text().strip().splitlines()) == 5
