"""Multi-label heads: one binary probe per label through the tuned protocol, end to end."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from cactus_features import train_head
from cactus_features.errors import ConfigError
from cactus_features.heads import predict_scores
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.nn.models import head_from_state
from cactus_features.heads.prepare.data import prepare
from cactus_features.heads.prepare.multilabel import takes_labels
from cactus_features.heads.run import score_rows
from cactus_features.notices import ConvergenceWarning
from cactus_features.report import compare
from cactus_features.runfile import load_run
from cactus_features.study.predict import predicted_labels, write_labels, write_submission

from .multilabel_data import LABELS, binary_column, multilabel_features


@pytest.fixture(scope="module")
def fs():
    return multilabel_features()


@pytest.fixture(scope="module")
def trained(fs):
    return train_head(fs, save=False)


@pytest.mark.filterwarnings("ignore::cactus_features.notices.ConvergenceWarning")
@pytest.mark.parametrize("class_weight", ["inverse", "balanced", "none"])
def test_each_label_is_the_binary_head_on_its_column(fs, class_weight):
    result = train_head(fs, save=False, class_weight=class_weight)
    state = result.run.head_state
    assert state["linear.weight"].shape == (len(LABELS), fs.dim)
    assert state["linear.bias"].shape == (len(LABELS),)
    grid = result.run.info["grid"]
    for j, name in enumerate(LABELS):
        binary = train_head(binary_column(fs, j), save=False, class_weight=class_weight)
        # the same path, in the same row order: bit for bit
        assert np.array_equal(state["linear.weight"][j], binary.run.head_state["linear.weight"][0])
        assert state["linear.bias"][j] == binary.run.head_state["linear.bias"][0]
        assert grid["per_label"][name] == binary.run.info["grid"]
        assert grid["chosen_value"][j] == binary.run.info["grid"]["chosen_value"]
        np.testing.assert_allclose(
            result.predictions.score[:, j], binary.predictions.score, rtol=0, atol=1e-6
        )
        expected = binary.run.info["class_weights"]
        assert result.run.info["class_weights"][j] == pytest.approx(expected, abs=1e-15)


def test_predictions_are_a_sigmoid_per_label_in_a_format_2_run(fs, tmp_path):
    result = train_head(fs, out=tmp_path)
    with h5py.File(result.path, "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["task"] == "multilabel"
    run = load_run(result.path)
    preds = run.predictions
    assert preds.task == "multilabel" and preds.label.dtype == np.uint8
    rows = np.flatnonzero(fs.split <= 2)
    assert np.array_equal(preds.label, fs.label_matrix[rows])
    assert preds.score.shape == (len(rows), len(LABELS))
    # one sigmoid per output, not a softmax over them
    data = prepare(fs, result.config)
    w, b = run.head_state["linear.weight"], run.head_state["linear.bias"]
    z = data.inputs(rows).astype(np.float64) @ w.T.astype(np.float64) + b
    np.testing.assert_allclose(preds.score, 1.0 / (1.0 + np.exp(-z)), atol=1e-5)
    assert np.ptp(preds.score.sum(axis=1)) > 0.5
    np.testing.assert_allclose(predict_scores(run, fs.embeddings[rows]), preds.score, atol=1e-6)
    info = run.info
    assert info["task"] == "multilabel" and "positive_class" not in info
    assert info["class_names"] == list(LABELS)
    assert info["class_counts_train"] == fs.label_matrix[fs.split == 0].sum(0).tolist()


def test_score_rows_takes_the_task_and_refuses_one_that_does_not_fit(trained, fs):
    module = head_from_state(trained.run.head_state)
    x = fs.embeddings[:5]
    sig = score_rows(module, None, x, task="multilabel")
    soft = score_rows(module, None, x, task="multiclass")
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert not np.allclose(sig, soft)
    with pytest.raises(ValueError, match="a head with 4 outputs does not fit task 'binary'"):
        score_rows(module, None, x, task="binary")


def test_grid_info_and_console_note_summarise_the_labels(trained, fs, capsys):
    grid = trained.run.info["grid"]
    per = [grid["per_label"][n] for n in LABELS]
    assert grid["labels"] == list(LABELS)
    assert grid["chosen_value"] == [g["chosen_value"] for g in per]
    assert grid["chosen_val_auc"] == pytest.approx(np.mean([g["chosen_val_auc"] for g in per]))
    assert grid["val_loss"] == pytest.approx(np.mean([g["val_loss"] for g in per], axis=0))
    assert trained.val_auc == pytest.approx(grid["chosen_val_auc"])
    assert 0.8 < trained.val_auc < 1.0
    train_head(fs, save=False, quiet=False)
    out = capsys.readouterr().out.splitlines()
    strengths = ", ".join(f"{n} {v:g}" for n, v in zip(LABELS, grid["chosen_value"], strict=True))
    note = [line for line in out if "grid over l2" in line]
    assert note == [
        f"  grid over l2 (9 values, by val_loss, per label): chose {strengths} (mean val loss "
        f"{grid['chosen_val_loss']:.4f}, mean val AUC {grid['chosen_val_auc']:.4f})"
    ]
    assert "class weights [cloud 0." in out[0]


def test_a_label_at_the_grid_edge_is_named_in_one_warning(fs):
    with pytest.warns(ConvergenceWarning, match="chosen l2 of labels? .* at the edge"):
        train_head(fs, save=False, l2_grid=(30.0, 10.0))


def test_tensors_follow_the_multilabel_contract(fs):
    data = prepare(fs, HeadConfig.create("linear"))
    t = data.tensors(torch.device("cpu"))
    n, nv, n_labels = data.train.size, data.val.size, len(LABELS)
    assert t.y_train.shape == (n, n_labels) and t.w_train.shape == (n, n_labels)
    assert t.y_val.shape == (nv, n_labels) and t.w_val.shape == (nv, n_labels)
    assert t.y_train.dtype == t.w_train.dtype == torch.float32
    assert np.array_equal(t.x_train.numpy(), data.inputs(data.train))  # cache order
    y = fs.label_matrix[data.train]
    assert np.array_equal(t.y_train.numpy(), y.astype(np.float32))
    cw = data.class_weights.astype(np.float32)
    expected = np.where(y == 1, cw[:, 1], cw[:, 0])
    assert np.array_equal(t.w_train.numpy(), expected)
    assert data.n_outputs == n_labels


@pytest.mark.parametrize(
    ("mode", "rule"),
    [
        ("inverse", lambda p, n: np.stack([p, 1 - p], axis=1)),
        ("balanced", lambda p, n: np.stack([1 / (2 * (1 - p)), 1 / (2 * p)], axis=1)),
        ("none", lambda p, n: np.ones((len(p), 2))),
    ],
)
def test_class_weight_modes_are_the_binary_rule_per_label(fs, mode, rule):
    data = prepare(fs, HeadConfig.create("linear", class_weight=mode))
    p = fs.label_matrix[data.train].mean(axis=0)
    np.testing.assert_allclose(data.class_weights, rule(p, data.train.size), rtol=1e-12)
    assert data.class_weight_mode == mode


def test_explicit_class_weights_and_positive_class_are_refused(fs):
    with pytest.raises(ConfigError, match="do not apply to multi-label data") as caught:
        train_head(fs, save=False, class_weight=(0.5, 0.5))
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="positive_class='road' applies to binary tasks"):
        train_head(fs, save=False, positive_class="road")


def test_a_label_without_both_values_in_a_split_is_named(fs):
    y = fs.label_matrix.copy()
    y[fs.split == 0, 2] = 0
    with pytest.raises(ConfigError, match="label 'road' is on no image of the training split"):
        train_head(replace(fs, label_matrix=y, _embeddings=fs.embeddings), save=False)
    y = fs.label_matrix.copy()
    y[fs.split == 1, 0] = 1
    with pytest.raises(ConfigError, match="label 'cloud' is on every image of the validation"):
        train_head(replace(fs, label_matrix=y, _embeddings=fs.embeddings), save=False)


REFUSED = [
    {"solver": "lbfgs"},
    {"head": "linear", "solver": "lbfgs", "epochs": 20},
]


@pytest.mark.parametrize("options", REFUSED)
def test_heads_without_multilabel_support_refuse_it(fs, options):
    config = HeadConfig.create(**options)
    assert not takes_labels(config.head, config.solver)
    with pytest.raises(ConfigError, match=r"^multi-label data \(4 labels\): the") as caught:
        train_head(fs, save=False, **options)
    assert "linear (solver grid/adam)" in str(caught.value)


def _two_runs(tmp_path):
    base = multilabel_features(seed=3)
    paths = []
    for name, noise in (("alpha", 1.0), ("beta", 3.0)):
        x = multilabel_features(seed=3, noise=noise).embeddings
        fs = replace(base, key={"backbone": name, "resolution": 8}, _embeddings=x)
        paths.append(train_head(fs, out=tmp_path / "runs").path)
    return paths


@pytest.mark.filterwarnings("ignore::cactus_features.notices.ConvergenceWarning")
def test_compare_two_multilabel_runs_gives_per_label_ap_as_sklearn(tmp_path):
    from sklearn.metrics import average_precision_score

    paths = _two_runs(tmp_path)
    report = compare(paths, out=tmp_path / "report", n_bootstrap=20)
    assert report.task == "multilabel"
    for b, path in zip(report.backbones, paths, strict=True):
        test = load_run(path).predictions.select("test")
        rows = {r.class_name: r for r in report.per_class if r.backbone == b.label}
        aps = []
        for j, name in enumerate(LABELS):
            ap = average_precision_score(test.label[:, j], test.score[:, j])
            assert rows[name].metrics["average_precision"].value == pytest.approx(ap, abs=1e-12)
            aps.append(ap)
        metrics = report.row(b.label).metrics
        assert metrics["macro_map"].value == pytest.approx(np.mean(aps), abs=1e-12)
        micro = average_precision_score(test.label.ravel(), test.score.ravel())
        assert metrics["micro_map"].value == pytest.approx(micro, abs=1e-12)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "alpha@8" in text and "beta@8" in text and "mAP" in text


def test_predicted_labels_of_every_task():
    names = ["cloud", "field", "road"]
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.3, 0.4], [0.6, 0.7, 0.8]])
    assert predicted_labels(scores, "multilabel", names, 1, "|") == [
        "cloud|field",
        "",
        "cloud|field|road",
    ]
    assert predicted_labels(scores, "multilabel", names, 1, " ")[0] == "cloud field"
    assert predicted_labels(scores, "multiclass", names, 1, " ") == ["cloud", "road", "road"]
    binary = predicted_labels(np.array([0.7, 0.2]), "binary", ["cactus", "no_cactus"], 0, " ")
    assert binary == ["cactus", "no_cactus"]


def test_submission_files_with_a_column_per_label_or_the_labels(tmp_path, trained, fs):
    scores = predict_scores(trained.run, fs.embeddings[:3])
    ids = [str(i) for i in fs.ids[:3]]
    names = trained.run.info["class_names"]
    path = write_submission(tmp_path / "p.csv", "id", names, ids, scores)
    lines = path.read_text().splitlines()
    assert lines[0] == "id,cloud,field,road,water" and len(lines) == 4
    values = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(values, scores, atol=1e-6)
    labels = predicted_labels(scores, "multilabel", names, 1, "|")
    path = write_labels(tmp_path / "l.csv", "id", "tags", ids, labels)
    rows = [f"{i},{v}" for i, v in zip(ids, labels, strict=True)]
    assert path.read_text().splitlines() == ["id,tags", *rows]
