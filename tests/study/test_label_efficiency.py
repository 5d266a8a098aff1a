"""Label-efficiency subsamples (stratified, nested, seeded) and curves."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from cactus_features.cli import cli
from cactus_features.cli.label_efficiency import COMMANDS
from cactus_features.errors import ConfigError
from cactus_features.heads import train_head
from cactus_features.metrics.core import choose_threshold
from cactus_features.study.label_efficiency import (
    FRACTIONS,
    class_counts,
    label_efficiency,
    nested_subsets,
)
from tests.heads.synthetic import make_features, write_cache


@pytest.fixture
def fs():
    return make_features(n=1000, d=8, pos_frac=0.75)


def _train(fs) -> np.ndarray:
    return np.flatnonzero(fs.split == 0)


def test_subsamples_are_stratified_with_a_minimum_per_class(fs) -> None:
    train = _train(fs)
    n_c = np.bincount(fs.labels[train])
    subsets = nested_subsets(fs.labels, train, FRACTIONS, seed=0, min_per_class=2)
    for f, rows in subsets.items():
        counts = np.bincount(fs.labels[rows], minlength=2)
        expected = [min(n, max(2, round(f * n))) for n in n_c]
        assert counts.tolist() == expected, f
        assert set(rows.tolist()) <= set(train.tolist())
        assert np.all(np.diff(rows) > 0)  # sorted, unique
    assert np.bincount(fs.labels[subsets[0.01]]).tolist() == [2, 4]  # 150 / 450 rows
    assert class_counts([10, 1000], 0.01, 3) == [3, 10]


def test_subsamples_are_nested_and_the_full_fraction_is_the_split(fs) -> None:
    train = _train(fs)
    subsets = nested_subsets(fs.labels, train, FRACTIONS, seed=3)
    ordered = [set(subsets[f].tolist()) for f in sorted(FRACTIONS)]
    assert all(a < b for a, b in itertools.pairwise(ordered))
    np.testing.assert_array_equal(subsets[1.0], train)


def test_subsamples_are_seeded(fs) -> None:
    train = _train(fs)
    a = nested_subsets(fs.labels, train, (0.1, 0.5), seed=1)
    b = nested_subsets(fs.labels, train, (0.1, 0.5), seed=1)
    c = nested_subsets(fs.labels, train, (0.1, 0.5), seed=2)
    assert all(np.array_equal(a[f], b[f]) for f in a)
    assert not any(np.array_equal(a[f], c[f]) for f in a)


@pytest.mark.parametrize("bad", [(0.0,), (1.5,), (), (0.1, 0.1)])
def test_bad_fractions_are_refused(fs, bad) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        nested_subsets(fs.labels, _train(fs), bad, seed=0)


def test_too_few_rows_of_a_class_are_refused(fs) -> None:
    with pytest.raises(ConfigError, match="min_per_class"):
        nested_subsets(fs.labels, _train(fs), (0.1,), seed=0, min_per_class=1000)


def test_curves_match_heads_trained_by_hand(fs) -> None:
    other = replace(fs, key={"backbone": "other", "resolution": 64})
    other = replace(other, _embeddings=fs.embeddings[:, ::-1].copy() * 0.5)
    result = label_efficiency([fs, other], (0.05, 1.0), (0, 1), n_bootstrap=200, epochs=30, lr=0.01)
    assert result.backbones == ["synthetic@32", "other@64"]
    assert [p.fraction for p in result.curve("synthetic@32")] == [0.05, 1.0]
    point = result.curve("synthetic@32")[0]
    test, val = fs.split == 2, fs.split == 1
    aucs, accs = [], []
    for seed in (0, 1):
        rows = nested_subsets(fs.labels, _train(fs), (0.05, 1.0), seed)[0.05]
        run = train_head(fs, epochs=30, lr=0.01, save=False, train_rows=rows)
        score = {i: s for i, s in zip(run.predictions.ids, run.predictions.score, strict=True)}
        te = np.array([score[i] for i in fs.ids[test]])
        va = np.array([score[i] for i in fs.ids[val]])
        t = choose_threshold(fs.labels[val] == 1, va)
        aucs.append(roc_auc_score(fs.labels[test], te))
        accs.append(np.mean((te >= t) == (fs.labels[test] == 1)))
    np.testing.assert_allclose(point.by_seed["roc_auc"], aucs, atol=1e-12)
    np.testing.assert_allclose(point.by_seed["accuracy"], accs, atol=1e-12)
    assert point.metrics["roc_auc"].value == pytest.approx(np.mean(aucs))
    est = point.metrics["accuracy"]
    assert est.low <= est.value <= est.high and est.high - est.low > 0
    assert point.n_train == point.n_per_class[0] + point.n_per_class[1]
    full = result.curve("synthetic@32")[1]
    assert full.n_train == _train(fs).size and len(set(full.by_seed["roc_auc"])) == 1


def test_backbones_with_other_test_images_are_refused(fs) -> None:
    other = replace(fs, split=np.roll(fs.split, 1))
    with pytest.raises(ConfigError, match="different test images"):
        label_efficiency([fs, other], (1.0,), (0,), n_bootstrap=0, epochs=2)


def test_cli_end_to_end(tmp_path: Path, fs) -> None:
    for command in COMMANDS:
        cli.add_command(command)
    a = write_cache(tmp_path / "a.h5", fs)
    b = write_cache(tmp_path / "b.h5", replace(fs, key={"backbone": "b", "resolution": 64}))
    out = tmp_path / "le"
    result = CliRunner().invoke(
        cli,
        ["label-efficiency", str(a), str(b), "--fractions", "0.02,0.2,1", "--seeds", "3",
         "--n-bootstrap", "100", "--out", str(out), "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "synthetic@32" in result.stdout and "b@64" in result.stdout and "20 %" in result.stdout
    csv = (out / "label_efficiency.csv").read_text().splitlines()
    assert csv[0].startswith("backbone,fraction,n_train,n_train_0,n_train_1,roc_auc,roc_auc_low")
    assert len(csv) == 1 + 2 * 3
    md = (out / "label_efficiency.md").read_text()
    assert "## Label efficiency" in md and "seeds 0, 1, 2" in md
    assert "![Label-efficiency curves](label_efficiency.png)" in md
    assert (out / "label_efficiency.png").stat().st_size > 10_000
    bad = CliRunner().invoke(
        cli, ["label-efficiency", str(a), "--fractions", "0,x", "--out", str(out)]
    )
    assert bad.exit_code == 2 and "--fractions" in bad.output


def test_a_study_adds_the_curves_to_its_report(kaggle_data, tmp_path: Path) -> None:
    from cactus_features.extract.api import BackboneRequest
    from cactus_features.study.config import load_study
    from cactus_features.study.runner import run_study

    img_dir, csv_path = kaggle_data
    toml = tmp_path / "study.toml"
    toml.write_text(
        f'data = "{img_dir}"\nlabels = "{csv_path}"\nout = "{tmp_path / "report"}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\nquiet = true\n'
        "[compare]\nn_bootstrap = 50\n"
        '[[backbone]]\nname = "resnet18"\nresolution = 32\nweights = "none"\n'
        '[[head]]\nhead = "linear"\nepochs = 10\n'
        "[label_efficiency]\nfractions = [0.3, 1.0]\nseeds = 2\nn_bootstrap = 50\nepochs = 10\n"
    )
    config = load_study(toml)
    assert config.label_efficiency == {
        "fractions": [0.3, 1.0], "seeds": 2, "n_bootstrap": 50, "epochs": 10
    }  # fmt: skip
    config.backbones = [BackboneRequest("resnet18", "none", None, 32)]
    result = run_study(config)
    curves = result.label_efficiency
    assert curves is not None and curves.seeds == (0, 1) and curves.fractions == (0.3, 1.0)
    assert curves.options == {"epochs": 10}
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Label efficiency" in report
    assert "![Label-efficiency curves](label_efficiency.png)" in report
    assert (tmp_path / "report" / "label_efficiency.csv").is_file()
    assert "label_efficiency" in result.seconds


def _three_classes():
    fs = make_features(n=360, d=8, n_classes=3, seed=2)
    rng = np.random.default_rng(5)
    means = 2.0 * rng.standard_normal((3, fs.embeddings.shape[1]))
    x = fs.embeddings + means[fs.labels].astype(np.float32)
    return replace(fs, _embeddings=x.astype(np.float32))


def test_k_class_curves_are_top1_and_macro_auc_of_heads_trained_by_hand() -> None:
    fs = _three_classes()
    result = label_efficiency([fs], (0.1, 1.0), (0, 1), n_bootstrap=100)
    assert result.task == "multiclass" and result.metrics == ("macro_roc_auc", "accuracy")
    point = result.curve(fs.name)[0]
    test = fs.split == 2
    aucs, accs = [], []
    for seed in (0, 1):
        rows = nested_subsets(fs.labels, _train(fs), (0.1, 1.0), seed)[0.1]
        run = train_head(fs, save=False, train_rows=rows)
        score = dict(zip(run.predictions.ids, run.predictions.score, strict=True))
        proba = np.stack([score[i] for i in fs.ids[test]])
        aucs.append(roc_auc_score(fs.labels[test], proba, multi_class="ovr", average="macro"))
        accs.append(np.mean(proba.argmax(axis=1) == fs.labels[test]))
    np.testing.assert_allclose(point.by_seed["macro_roc_auc"], aucs, atol=1e-12)
    np.testing.assert_allclose(point.by_seed["accuracy"], accs, atol=1e-12)
    est = point.metrics["accuracy"]
    assert est.low <= est.value <= est.high and est.high > est.low
    assert len(point.n_per_class) == 3 and min(point.n_per_class) >= 2


def test_k_class_curves_render(tmp_path: Path) -> None:
    from cactus_features.report.label_efficiency import rows, write_label_efficiency

    result = label_efficiency([_three_classes()], (0.2, 1.0), (0,), n_bootstrap=50)
    headers, body = rows(result)
    assert "Test macro ROC AUC" in headers and "Test accuracy" in headers
    assert headers[2] == "Train rows (0 / 1 / 2)" and len(body) == 2
    paths = write_label_efficiency(result, tmp_path)
    text = paths["markdown"].read_text()
    assert "accuracy: top-1" in text and "Youden" not in text
    assert "macro_roc_auc_low" in paths["csv"].read_text().splitlines()[0]


def test_multilabel_subsamples_are_nested_seeded_prefixes_with_every_label_present() -> None:
    from cactus_features.study.label_efficiency import nested_prefix_subsets

    rng = np.random.default_rng(0)
    y = (rng.random((500, 3)) < [0.5, 0.2, 0.03]).astype(np.uint8)
    train = np.arange(0, 500, 2)
    subsets = nested_prefix_subsets(y, train, (0.01, 0.1, 1.0), seed=4, min_per_class=2)
    assert set(subsets[0.01]) <= set(subsets[0.1]) <= set(subsets[1.0]) == set(train)
    for rows in subsets.values():
        counts = y[rows].sum(axis=0)
        assert (counts >= 2).all() and (len(rows) - counts >= 2).all()
    # the rare label forces the smallest subsamples beyond round(f * 250) rows: to the
    # shortest prefix with two of its positives
    shortest = len(subsets[0.01])
    assert shortest > 25 and len(subsets[0.1]) == shortest
    order = np.random.default_rng(4).permutation(train)
    assert y[order[:shortest], 2].sum() == 2 and y[order[: shortest - 1], 2].sum() == 1
    again = nested_prefix_subsets(y, train, (0.01, 0.1, 1.0), seed=4, min_per_class=2)
    assert all(np.array_equal(again[f], subsets[f]) for f in subsets)
    y[train, 2] = 0
    with pytest.raises(ConfigError, match="label 'c'"):
        nested_prefix_subsets(y, train, (0.5,), seed=0, names=["a", "b", "c"])


def test_binary_curves_score_the_positive_class_the_heads_score(fs) -> None:
    named = replace(fs, class_names=["cactus", "no_cactus"])  # positive: cactus (index 0)
    result = label_efficiency([named], (1.0,), (0,), n_bootstrap=0, epochs=30, lr=0.01)
    run = train_head(named, epochs=30, lr=0.01, save=False)
    assert run.predictions.positive_index == 0
    test = named.split == 2
    score = dict(zip(run.predictions.ids, run.predictions.score, strict=True))
    te = np.array([score[i] for i in named.ids[test]])
    expected = roc_auc_score(named.labels[test] == 0, te)
    assert result.points[0].by_seed["roc_auc"] == pytest.approx((expected,), abs=1e-12)
    assert expected > 0.7


def test_multilabel_curves_are_macro_map_and_auc_of_heads_trained_by_hand() -> None:
    from sklearn.metrics import average_precision_score

    from cactus_features.study.label_efficiency import nested_prefix_subsets
    from tests.heads.multilabel_data import multilabel_features

    fs = multilabel_features()
    result = label_efficiency([fs], (0.3, 1.0), (0,), n_bootstrap=50)
    assert result.task == "multilabel" and result.metrics == ("macro_map", "macro_roc_auc")
    point = result.curve(fs.name)[0]
    rows = nested_prefix_subsets(fs.label_matrix, _train(fs), (0.3, 1.0), 0)[0.3]
    run = train_head(fs, save=False, train_rows=rows)
    score = dict(zip(run.predictions.ids, run.predictions.score, strict=True))
    test = fs.split == 2
    proba, y = np.stack([score[i] for i in fs.ids[test]]), fs.label_matrix[test]
    ap = np.mean([average_precision_score(y[:, j], proba[:, j]) for j in range(y.shape[1])])
    auc = np.mean([roc_auc_score(y[:, j], proba[:, j]) for j in range(y.shape[1])])
    assert point.by_seed["macro_map"] == pytest.approx((ap,), abs=1e-12)
    assert point.by_seed["macro_roc_auc"] == pytest.approx((auc,), abs=1e-12)
    assert point.n_per_class == tuple(int(c) for c in fs.label_matrix[rows].sum(axis=0))
    assert point.n_train == rows.size
