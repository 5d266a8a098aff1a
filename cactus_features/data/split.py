"""The seeded, stratified train/val/test split shared by every backbone."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cactus_features.errors import ConfigError, DataError
from cactus_features.features import SPLIT_NAMES, SPLIT_NONE


@dataclass(frozen=True)
class SplitConfig:
    """How the labelled images are split.

    Attributes:
        train: Share of each class in the training split.
        val: Share of each class in the validation split.
        test: Share of each class in the test split.
        seed: Seed of the permutation; the same seed gives the same split.
    """

    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        ratios = (self.train, self.val, self.test)
        try:
            values = [float(r) for r in ratios]
        except (TypeError, ValueError):
            values = [math.nan]
        # "not r > 0" also rejects NaN, which every comparison lets through.
        if not all(math.isfinite(r) and r > 0 for r in values) or abs(sum(values) - 1.0) > 1e-6:
            raise ConfigError(
                f"split ratios {self.train}/{self.val}/{self.test} must be positive and sum to 1"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ConfigError(f"--seed {self.seed!r}: must be a whole number")
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed}: must be 0 or more")

    def as_dict(self) -> dict[str, float | int]:
        """The configuration as a plain dict (stored in the cache)."""
        return asdict(self)


def stratified_split(
    labels: np.ndarray,
    config: SplitConfig | None = None,
    *,
    class_names: list[str] | None = None,
) -> np.ndarray:
    """Assign each labelled image to train (0), val (1) or test (2), per class.

    Within each class the images are permuted with ``config.seed`` and cut at the
    configured shares (rounded), so every split holds each class in the same
    proportion. Unlabelled rows (label ``-1``) get code 255.

    Args:
        labels: Label indices ``[N]``.
        config: Ratios and seed; defaults to 70/15/15 with seed 0.
        class_names: Names of the classes, used to name a class that is too small.

    Returns:
        Split codes ``[N]`` as uint8.

    Raises:
        DataError: If a class is too small for every split to get at least one image.
    """
    config = config or SplitConfig()
    labels = np.asarray(labels)
    split = np.full(len(labels), SPLIT_NONE, dtype=np.uint8)
    rng = np.random.default_rng(config.seed)
    for cls in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == cls)
        rows = rows[rng.permutation(len(rows))]
        n = len(rows)
        n_train = round(n * config.train)
        n_val = round(n * config.val)
        n_test = n - n_train - n_val
        if min(n_train, n_val, n_test) < 1:
            if class_names is not None and 0 <= int(cls) < len(class_names):
                what = f"class {class_names[int(cls)]!r}"
            else:
                what = f"class index {int(cls)}"
            raise DataError(
                f"{what} has {n} images: too few for a "
                f"{config.train}/{config.val}/{config.test} split to give every split at least "
                "one; add images or change the ratios"
            )
        split[rows[:n_train]] = 0
        split[rows[n_train : n_train + n_val]] = 1
        split[rows[n_train + n_val :]] = 2
    return split


def split_counts(split: np.ndarray, labels: np.ndarray) -> dict[str, dict[int, int]]:
    """Count images per class in each split, e.g. ``{"train": {0: 3055, 1: 9195}, ...}``."""
    out: dict[str, dict[int, int]] = {}
    for code, name in enumerate(SPLIT_NAMES):
        m = split == code
        values, counts = np.unique(labels[m], return_counts=True)
        out[name] = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    return out
