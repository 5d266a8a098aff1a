from __future__ import annotations

import csv
import logging

import pytest

from cactus_features.errors import ConfigError, WeightsError
from cactus_features.extract.api import BackboneRequest
from cactus_features.study.config import StudyConfig, load_study
from cactus_features.study.predict import predict_folder
from cactus_features.study.runner import run_study


def _config(img_dir, csv_path, tmp_path, **kw) -> StudyConfig:
    base = dict(
        data=str(img_dir),
        labels=str(csv_path),
        backbones=["resnet18@32", "squeezenet1_1@32"],
        heads=[{"head": "linear", "epochs": 30}],
        out=str(tmp_path / "report"),
        cache_dir=str(tmp_path / "cache"),
        quiet=True,
        compare={"n_bootstrap": 200},
    )
    base.update(kw)
    cfg = StudyConfig(**base)
    cfg.backbones = [BackboneRequest(b.name, "none", None, b.resolution) for b in cfg.backbones]
    return cfg


def test_study_end_to_end_then_new_head_retrains_only(kaggle_data, tmp_path, caplog):
    img_dir, csv_path = kaggle_data
    result = run_study(_config(img_dir, csv_path, tmp_path))
    assert (tmp_path / "report" / "report.md").is_file()
    assert (tmp_path / "report" / "roc.png").is_file()
    (comparison,) = result.comparisons.values()
    assert len(comparison.backbones) == 2
    runs = result.runs["linear-epochs30"]
    assert all(r.path.is_file() for r in runs)
    # both backbones were scored on exactly the same test ids
    t0, t1 = (set(r.predictions.select("test").ids) for r in runs)
    assert t0 == t1 and len(t0) > 0
    with caplog.at_level(logging.INFO, logger="cactus_features"):
        again = run_study(
            _config(img_dir, csv_path, tmp_path, heads=[{"head": "mlp", "epochs": 20}])
        )
    assert caplog.text.count("cache hit") == 2
    assert "mlp-epochs20" in again.runs


def test_missing_weights_policies(kaggle_data, tmp_path, monkeypatch):
    img_dir, csv_path = kaggle_data
    from cactus_features.study import runner

    monkeypatch.setattr(
        runner,
        "weights_unavailable",
        lambda name, *a, **k: "offline" if name == "resnet18" else None,
    )
    cfg = _config(img_dir, csv_path, tmp_path, missing_weights="error")
    with pytest.raises(WeightsError, match="offline"):
        run_study(cfg)
    cfg = _config(img_dir, csv_path, tmp_path, missing_weights="skip")
    result = run_study(cfg)
    assert set(result.skipped) == {"resnet18"} and len(result.features) == 1


def test_load_study_resolves_paths_and_refuses_unknown_keys(tmp_path):
    f = tmp_path / "study.toml"
    f.write_text(
        'data = "imgs"\nlabels = "l.csv"\nout = "rep"\n[[backbone]]\nname = "resnet18"\n'
        'resolution = 64\n[[head]]\nhead = "mlp"\nepochs = 10\n[split]\nseed = 3\n'
    )
    cfg = load_study(f)
    assert cfg.data == str(tmp_path / "imgs") and cfg.out == str(tmp_path / "rep")
    assert cfg.backbones[0].resolution == 64 and cfg.heads == [{"head": "mlp", "epochs": 10}]
    assert cfg.split.seed == 3
    f.write_text('data = "x"\nbackbon = 1\n')
    with pytest.raises(ConfigError, match="unknown keys backbon"):
        load_study(f)


def test_the_preset_is_a_head_option_of_the_toml(tmp_path):
    f = tmp_path / "study.toml"
    base = 'data = "imgs"\n[[backbone]]\nname = "resnet18"\n[[head]]\nhead = "linear"\n'
    f.write_text(base + 'preset = "report"\n')
    assert load_study(f).heads == [{"head": "linear", "preset": "report"}]
    f.write_text(base + 'preset = "fast"\n')
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        load_study(f)


def test_examples_parse():
    from pathlib import Path

    for toml in Path(__file__).resolve().parents[2].joinpath("examples").glob("*.toml"):
        cfg = load_study(toml)
        assert cfg.backbones and cfg.heads


def test_predict_writes_a_submission_in_sample_order(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    result = run_study(_config(img_dir, csv_path, tmp_path, backbones=["resnet18@32"]))
    run = result.runs["linear-epochs30"][0]
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    names = sorted(p.name for p in img_dir.iterdir())[:7]
    for n in names:
        (test_dir / n).write_bytes((img_dir / n).read_bytes())
    sample = tmp_path / "sample_submission.csv"
    with open(sample, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "has_cactus"])
        w.writerows([(n, 0.5) for n in reversed(names)])
    sub = predict_folder(run.path, test_dir, tmp_path / "sub.csv", sample_submission=sample)
    rows = list(csv.DictReader(open(sub.path)))
    assert [r["id"] for r in rows] == list(reversed(names))
    assert all(0.0 <= float(r["has_cactus"]) <= 1.0 for r in rows)
    # the same images scored during training get the same scores from the saved head
    train_scores = dict(zip(run.predictions.ids, run.predictions.score, strict=True))
    for r in rows:
        assert abs(float(r["has_cactus"]) - train_scores[r["id"]]) < 1e-5
    (sample_bad := tmp_path / "bad.csv").write_text("id,has_cactus\nnope.jpg,0.5\n")
    from cactus_features.errors import DataError

    with pytest.raises(DataError, match=r"nope\.jpg"):
        predict_folder(run.path, test_dir, tmp_path / "s2.csv", sample_submission=sample_bad)
