"""The tuned default protocol and the seed's recipe as the ``report`` preset."""

from __future__ import annotations

import warnings
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from cactus_features.heads import train_head, train_with_config
from cactus_features.heads.config import LINEAR_L2_GRID, HeadConfig, protocol_label
from cactus_features.heads.prepare.data import prepare
from cactus_features.notices import ConvergenceWarning

from .fixtures.make_report_reference import CASES
from .synthetic import make_features

REFERENCE = Path(__file__).parent / "fixtures" / "report_reference.npz"


def _arrays(result) -> dict[str, np.ndarray]:
    out = {f"state/{k}": v for k, v in result.run.head_state.items()}
    out.update({f"history/{k}": v for k, v in result.history.items()})
    out["score"] = result.predictions.score
    out["best_epoch"] = np.array(result.best_epoch)
    out["val_auc"] = np.array(result.val_auc)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_report_preset_reproduces_the_seed_default_bitwise(case: str) -> None:
    """Weights, curves, scores, selected epoch and AUC as the code at 5bfef8d made them
    (``fixtures/make_report_reference.py``). The native kernels are deterministic per
    machine, not across CPU models (vector widths): elsewhere they agree to 1e-5."""
    reference = np.load(REFERENCE)
    kwargs = dict(CASES[case])
    result = train_head(make_features(n=300, d=16), preset="report", save=False, **kwargs)
    got = _arrays(result)
    expected = {k.split("/", 1)[1]: reference[k] for k in reference.files if k.startswith(case)}
    assert set(got) == set(expected)
    same_cpu = str(reference["host_cpu"]) == llvm.get_host_cpu_name()
    for key, value in expected.items():
        if same_cpu:
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert result.run.info["protocol"] == protocol_label(result.run.config)
    expected_label = "report" if case == "linear" else "report (epochs=30)"
    assert result.run.info["protocol"] == expected_label


def test_report_preset_is_the_dataclass_default_recipe() -> None:
    fs = make_features(n=200, d=8)
    preset = train_head(fs, preset="report", epochs=40, save=False)
    plain = train_with_config(fs, HeadConfig.create(preset="", epochs=40), save=False)
    for key, value in _arrays(plain).items():
        np.testing.assert_array_equal(_arrays(preset)[key], value, err_msg=key)


def _sklearn_choice(fs, grid):
    """scikit-learn's best-on-validation LogisticRegression over the grid (the library's
    inputs: centred, one global scale; class-weighted; ``C = 1 / (lam * sum of weights)``)."""
    data = prepare(fs, HeadConfig.create())
    x, xv, xt = (data.inputs(i) for i in (data.train, data.val, data.test))
    y, yv, yt = (data.labels[i] for i in (data.train, data.val, data.test))
    s, sv = data.class_weights[y], data.class_weights[yv]
    losses, models = [], []
    for lam in grid:
        model = LogisticRegression(C=1.0 / (lam * s.sum()), tol=1e-8, max_iter=10000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, sample_weight=s)
        losses.append(log_loss(yv, model.predict_proba(xv)[:, 1], sample_weight=sv))
        models.append(model)
    best = int(np.argmin(losses))
    pt = models[best].predict_proba(xt)[:, 1]
    return best, losses, roc_auc_score(yt, pt), float(((pt >= 0.5) == yt).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tuned_protocol_matches_sklearn_over_the_same_grid(seed: int) -> None:
    fs = make_features(n=600, d=24, seed=seed, signal=1.0)
    result = train_head(fs, save=False)
    grid = result.run.info["grid"]
    assert grid["values"] == list(LINEAR_L2_GRID) and grid["criterion"] == "val_loss"
    best, losses, sk_auc, sk_acc = _sklearn_choice(fs, LINEAR_L2_GRID)
    assert grid["chosen"] == best
    np.testing.assert_allclose(grid["val_loss"], losses, rtol=1e-4)
    pred = result.predictions
    on_test = pred.split == 2
    auc = roc_auc_score(pred.label[on_test], pred.score[on_test])
    acc = float(((pred.score[on_test] >= 0.5) == pred.label[on_test]).mean())
    assert auc == pytest.approx(sk_auc, abs=1e-4)
    assert acc == pytest.approx(sk_acc, abs=1e-9)
    assert result.run.info["convergence"]["converged"] and result.run.info["warnings"] == []


def test_the_test_split_does_not_move_the_choice() -> None:
    fs = make_features(n=400, d=16)
    scrambled = fs.embeddings.copy()
    scrambled[fs.split == 2] = 0.0
    from dataclasses import replace

    a = train_head(fs, save=False).run.info["grid"]
    b = train_head(replace(fs, _embeddings=scrambled), save=False).run.info["grid"]
    assert a == b


def _trained(**kwargs):
    """``train_head`` on ``kwargs``; the result and the convergence warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_head(**kwargs)
    return result, [str(w.message) for w in caught if w.category is ConvergenceWarning]


def test_convergence_warning_fires_once_on_a_run_stopped_early() -> None:
    fs = make_features(n=400, d=16)
    result, lines = _trained(features=fs, epochs=2, save=False)  # 2 L-BFGS steps a strength
    assert not result.run.info["convergence"]["converged"]
    assert len(lines) == 1 and "did not converge" in lines[0] and "\n" not in lines[0]
    adam, lines = _trained(features=fs, preset="report", epochs=5, save=False)  # improving
    assert adam.best_epoch == 5
    assert len(lines) == 1 and "selected epoch is the last one (5/5)" in lines[0]
    done, lines = _trained(features=fs, save=False)
    assert lines == [] and done.run.info["warnings"] == []


def test_grid_edge_warning() -> None:
    fs = make_features(n=400, d=16, signal=3.0)
    result, lines = _trained(features=fs, l2_grid=(100.0, 30.0, 10.0), save=False)
    grid = result.run.info["grid"]
    assert grid["chosen_value"] == 10.0 and grid["at_edge"]
    assert len(lines) == 1 and "at the edge of the grid [10, 100]" in lines[0]


def test_mlp_grid_keeps_the_best_stacked_head() -> None:
    fs = make_features(n=300, d=12)
    wds = (1e-1, 1e-3)
    tuned = train_head(fs, head="mlp", hidden=(8,), epochs=20, l2_grid=wds, save=False)
    grid = tuned.run.info["grid"]
    assert grid["param"] == "weight_decay" and len(grid["val_loss"]) == 2
    k = int(np.argmin(grid["val_loss"]))
    single = train_head(
        fs, head="mlp", hidden=(8,), epochs=20, weight_decay=wds[k], select="val_loss",
        scale="global", save=False,
    )  # fmt: skip
    assert tuned.best_epoch == single.best_epoch
    np.testing.assert_allclose(tuned.predictions.score, single.predictions.score, atol=1e-5)


def test_tuned_linear_refuses_adam_options() -> None:
    from cactus_features.errors import ConfigError

    with pytest.raises(ConfigError, match="only apply to --solver adam"):
        HeadConfig.create(preset="tuned", lr=1e-3)
    assert HeadConfig.create(lr=1e-3).solver == "adam"  # an Adam option, no preset: Adam


def test_tuned_head_on_constant_features_takes_no_iteration_and_still_makes_a_run(tmp_path):
    """Collapsed features (all equal): the grid's start already meets the tolerance."""
    fs = make_features(n=200, d=8)
    fs.embeddings[:] = 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_head(fs, out=tmp_path, quiet=True)
    grid = result.run.info["grid"]
    assert grid["steps"][grid["chosen"]] == 0
    assert result.val_auc == 0.5
    assert len(result.run.history["val_loss"]) == 1
