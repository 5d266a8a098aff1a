"""A study whose heads cannot take the dataset's task stops before any extraction."""

from __future__ import annotations

import pytest

from cactus_features.cli import main
from cactus_features.errors import ConfigError
from cactus_features.extract.api import BackboneRequest
from cactus_features.study.config import StudyConfig
from cactus_features.study.runner import run_study
from cactus_features.study.support import check_heads_support
from tests.multilabel import LABELS, write_multilabel


def _study(tmp_path, data, labels=None, heads=None, **extract) -> StudyConfig:
    return StudyConfig(
        data=str(data),
        labels=None if labels is None else str(labels),
        backbones=[BackboneRequest("resnet18", "none", None, 16)],
        heads=heads or [{"head": "linear"}, {"head": "mlp"}],
        out=str(tmp_path / "report"),
        cache_dir=str(tmp_path / "cache"),
        extract=extract,
        quiet=True,
    )


def test_multiclass_study_stops_before_extraction(digits_folders, tmp_path):
    heads = [{"head": "mlp"}, {"head": "linear", "solver": "lbfgs"}]
    with pytest.raises(ConfigError) as caught:
        run_study(_study(tmp_path, digits_folders, heads=heads))
    assert str(caught.value).startswith(
        "multiclass task (10 classes: 0, 1, 2, 3, 4, ...): heads linear (solver lbfgs) take "
        "binary tasks only so far (linear and mlp heads with the tuned or report preset, and "
        "knn, take K classes); nothing was extracted"
    )
    assert not (tmp_path / "cache").exists()


def test_multilabel_study_stops_before_extraction(tmp_path):
    img_dir, csv_path, _ = write_multilabel(tmp_path / "ds")
    config = _study(tmp_path, img_dir, csv_path, label_column=list(LABELS), limit=50)
    config.heads = [{"head": "linear"}, {"head": "knn"}, {"head": "linear", "solver": "lbfgs"}]
    with pytest.raises(
        ConfigError,
        match=r"^multilabel task \(4 labels: cloud, field, road, water\): heads linear "
        r"\(solver lbfgs\) take one",
    ):
        run_study(config)
    assert not (tmp_path / "cache").exists()


def test_binary_tasks_pass_the_check():
    check_heads_support("binary", ["0", "1"], [{"head": "linear"}])


def test_linear_and_mlp_heads_pass_the_multiclass_check():
    for preset in ("tuned", "report"):
        heads = [{"head": "linear", "preset": preset}, {"head": "mlp", "preset": preset}]
        check_heads_support("multiclass", list("abc"), heads)
    with pytest.raises(ConfigError, match=r"heads linear \(solver lbfgs\) take binary"):
        check_heads_support("multiclass", list("abc"), [{"head": "linear", "solver": "lbfgs"}])


def test_cli_run_says_it_in_one_line(digits_folders, tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(
        f'data = "{digits_folders}"\ncache_dir = "{tmp_path / "cache"}"\nout = "{tmp_path / "r"}"\n'
        '[[backbone]]\nname = "resnet18"\nweights = "none"\nresolution = 16\n'
        '[[head]]\nhead = "linear"\nsolver = "lbfgs"\n'
    )
    with pytest.raises(SystemExit) as caught:
        main(["run", "--config", str(study), "-q"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multiclass task (10 classes" in err[0]
    assert not (tmp_path / "cache").exists()
