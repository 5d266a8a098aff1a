"""A multi-label CSV set through the command line: extract, train, compare, predict, run."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cactus_features import load_features
from cactus_features.cli import main
from cactus_features.runfile import load_run
from tests.conftest import make_image
from tests.multilabel import LABELS, write_multilabel

N_IMAGES = 120


def _main(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out = capsys.readouterr()
    return caught.value.code, out.out, out.err


@pytest.fixture(scope="module")
def label_sets(tmp_path_factory):
    """A ``|``-separated label-set CSV over generated images, a few unlabelled ones, and
    the images' cache (extracted once through the CLI): ``(images, CSV, unlabelled, cache)``."""
    root = tmp_path_factory.mktemp("multilabel")
    img_dir, csv_path, _ = write_multilabel(root / "ds", n=N_IMAGES, shape="sets")
    test_dir = root / "ds" / "test"
    test_dir.mkdir()
    rng = np.random.default_rng(5)
    for i in range(6):
        make_image(rng, i % 2, 16).save(test_dir / f"new{i}.png")
    argv = ["extract", "--data", str(img_dir), "--labels", str(csv_path), "--weights", "none"]
    argv += ["--label-column", "tags", "--label-separator", "|", "--backbone", "resnet18@16"]
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--cache-dir", str(root / "cache"), "-q"])
    assert caught.value.code == 0
    (cache,) = (root / "cache").glob("*/*.h5")
    return img_dir, csv_path, test_dir, cache


@pytest.mark.filterwarnings("ignore::cactus_features.notices.ConvergenceWarning")
def test_train_compare_and_predict_a_multilabel_cache(tmp_path, label_sets, capsys):
    *_, test_dir, cache = label_sets
    runs = tmp_path / "runs"
    code, out, err = _main(["train", str(cache), "--out", str(runs), "-q"], capsys)
    assert code == 0, err
    assert "chose l2 per label (cloud " in out and "val mean AUC" in out
    assert "class weights [cloud 0." in out
    (run_path,) = runs.glob("*.h5")
    run = load_run(run_path)
    assert run.predictions.task == "multilabel"
    assert run.head_state["linear.weight"].shape[0] == len(LABELS)

    code, _, err = _main(["train", str(cache), "--out", str(runs), "--seed", "1", "-q"], capsys)
    assert code == 0, err
    paths = sorted(runs.glob("*.h5"))
    code, out, err = _main(
        ["compare", *map(str, paths), "--out", str(tmp_path / "report"), "--bootstrap", "20"],
        capsys,
    )
    assert code == 0, err
    assert "mAP" in (tmp_path / "report" / "report.md").read_text()

    proba = tmp_path / "proba.csv"
    code, _, err = _main(
        ["predict", str(run_path), "--data", str(test_dir), "--out", str(proba), "-q"], capsys
    )
    assert code == 0, err
    with open(proba, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", *sorted(LABELS)] and len(rows) == 7
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert ((values > 0) & (values < 1)).all()

    labels = tmp_path / "labels.csv"
    argv = ["predict", str(run_path), "--data", str(test_dir), "--out", str(labels)]
    code, _, err = _main([*argv, "--write", "label", "-q"], capsys)
    assert code == 0, err
    with open(labels, newline="") as fh:
        written = list(csv.reader(fh))
    assert written[0] == ["id", "tags"]
    names = sorted(LABELS)
    expected = ["|".join(n for n, p in zip(names, row, strict=True) if p >= 0.5) for row in values]
    assert [r[1] for r in written[1:]] == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--solver", "lbfgs"],
            "the linear head with solver 'lbfgs' takes one label per image only",
        ),
        (["--positive-class", "road"], "positive_class='road' applies to binary tasks"),
        (["--class-weight", "0.5,0.5"], "do not apply to multi-label data"),
    ],
)
def test_bad_multilabel_options_exit_2_in_one_line(tmp_path, label_sets, capsys, options, message):
    cache = label_sets[-1]
    code, _, err = _main(["train", str(cache), "--out", str(tmp_path / "r"), *options], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err


@pytest.mark.filterwarnings("ignore::cactus_features.notices.ConvergenceWarning")
def test_run_a_multilabel_study_from_a_toml(tmp_path, label_sets, capsys):
    img_dir, csv_path, _, cache = label_sets
    study = tmp_path / "study.toml"
    study.write_text(
        f'data = "{img_dir}"\nlabels = "{csv_path}"\nout = "{tmp_path / "report"}"\n'
        f'cache_dir = "{cache.parent.parent}"\n\n'
        '[extract]\nlabel_column = "tags"\nlabel_separator = "|"\n\n'
        '[[backbone]]\nname = "resnet18"\nweights = "none"\nresolution = 16\n\n'
        '[[head]]\nhead = "linear"\n\n[compare]\nn_bootstrap = 20\n'
    )
    code, out, err = _main(["run", "--config", str(study), "-q"], capsys)
    assert code == 0, err
    assert "report (linear)" in out
    text = (tmp_path / "report" / "report.md").read_text()
    assert "mAP" in text and "resnet18@16" in text
    assert list(cache.parent.glob("*.h5")) == [cache]  # the study re-used the cache
    assert load_features(cache).task == "multilabel"
