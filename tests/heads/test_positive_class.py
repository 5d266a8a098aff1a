"""The positive class of a binary head: the rule of data/classes.py, or the one the user names."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from cactus_features import train_head
from cactus_features.cli import _register, cli
from cactus_features.errors import ConfigError
from cactus_features.heads import predict_scores
from cactus_features.heads.config import HeadConfig
from cactus_features.metrics.compare import compare_runs
from cactus_features.runfile import load_run
from cactus_features.study.config import load_study

from .synthetic import make_features, write_cache


def cactus_folders_features():
    """Class folders ``cactus`` / ``no_cactus``: ``cactus`` sorts first (index 0)."""
    return replace(make_features(n=300, d=8), class_names=["cactus", "no_cactus"])


def test_kaggle_labels_keep_one_and_the_config_is_unchanged(features):
    ours = train_head(features, save=False)
    named = train_head(features, save=False, positive_class="1")
    assert ours.run.info["positive_class"] == 1 == named.run.info["positive_class"]
    np.testing.assert_array_equal(ours.predictions.score, named.predictions.score)
    assert "positive_class" not in ours.run.config
    assert HeadConfig.create().short_hash() == HeadConfig.create(positive_class=None).short_hash()


@pytest.mark.parametrize("head", ["linear", "mlp", "knn"])
def test_cactus_folders_score_cactus(head):
    fs = cactus_folders_features()
    options = {"epochs": 30} if head == "mlp" else {}
    default = train_head(fs, head, save=False, **options)
    other = train_head(fs, head, save=False, positive_class="no_cactus", **options)
    assert default.run.info["positive_class"] == 0 and other.run.info["positive_class"] == 1
    # the in-memory predictions say so too (compare on an unsaved run scores cactus)
    assert default.predictions.positive_index == 0 and other.predictions.positive_index == 1
    assert compare_runs([default.run], n_bootstrap=0).positive_name == "cactus"
    flipped = 1.0 - other.predictions.score
    if head == "mlp":  # not symmetric (initialisation, epoch choice): the same ranking
        assert np.corrcoef(default.predictions.score, flipped)[0, 1] > 0.95
    else:
        atol = 1e-6 if head == "knn" else 1e-3
        np.testing.assert_allclose(default.predictions.score, flipped, atol=atol)
    cactus = default.predictions.label == 0
    assert default.predictions.score[cactus].mean() > default.predictions.score[~cactus].mean()


def test_saved_cactus_run_compares_and_predicts_for_cactus(tmp_path):
    fs = cactus_folders_features()
    path = write_cache(tmp_path / "c" / "cactus_8.h5", fs)
    result = train_head(path, out=tmp_path / "runs")
    run = load_run(result.path)
    comparison = compare_runs([run], n_bootstrap=0)
    assert comparison.positive_name == "cactus" and comparison.negative_name == "no_cactus"
    np.testing.assert_allclose(
        predict_scores(run, fs.embeddings[:5]), result.predictions.score[:5], atol=1e-6
    )


def test_unknown_or_multiclass_positive_class_is_refused():
    with pytest.raises(ConfigError, match="not a class"):
        train_head(make_features(n=100, d=4), save=False, positive_class="cat")
    with pytest.raises(ConfigError, match="applies to binary tasks"):
        train_head(make_features(n=90, d=4, n_classes=3), save=False, positive_class="1")


def test_cli_positive_class(tmp_path):
    path = write_cache(tmp_path / "c" / "cactus_8.h5", cactus_folders_features())
    _register()
    argv = ["train", str(path), "--out", str(tmp_path / "runs"), "-q"]
    out = CliRunner().invoke(cli, [*argv, "--positive-class", "no_cactus"])
    assert out.exit_code == 0, out.output
    (run_file,) = (tmp_path / "runs").glob("*.h5")
    run = load_run(run_file)
    assert run.info["positive_class"] == 1 and run.config["positive_class"] == "no_cactus"


def test_study_toml_positive_class_applies_to_every_head(tmp_path):
    toml = tmp_path / "study.toml"
    toml.write_text(
        'data = "imgs"\npositive_class = "cactus"\n'
        '[[backbone]]\nname = "resnet18"\n[[head]]\nhead = "linear"\n'
        '[[head]]\nhead = "mlp"\npositive_class = "no_cactus"\n'
    )
    study = load_study(toml)
    assert [h["positive_class"] for h in study.heads] == ["cactus", "no_cactus"]
