"""The seeded, stratified train/val/test split shared by every backbone.

Single-label data (binary or multi-class) is split per class by
:func:`stratified_split`; multi-label data by :func:`iterative_split`.
:func:`split_table` picks the one that fits a table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cactus_features.data.table import ImageTable
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


def split_table(table: ImageTable, config: SplitConfig | None = None) -> np.ndarray:
    """Split a labelled table: per class, or iteratively for multi-label data.

    Args:
        table: A labelled image table.
        config: Ratios and seed; defaults to 70/15/15 with seed 0.

    Returns:
        Split codes ``[N]`` as uint8.

    Raises:
        DataError: If a class (or label) is too small for every split to get one.
    """
    if table.label_matrix is not None:
        return iterative_split(table.label_matrix, config, label_names=table.class_names)
    return stratified_split(table.labels, config, class_names=table.class_names)


def iterative_split(
    label_matrix: np.ndarray,
    config: SplitConfig | None = None,
    *,
    label_names: list[str] | None = None,
) -> np.ndarray:
    """Split multi-label data by iterative stratification (Sechidis et al., 2011).

    A multi-label image cannot be placed per class, so the split is built one label
    at a time, rarest first, keeping each label's share in every split close to its
    share overall:

    1. Each split ``j`` wants ``n_l * r_j`` positives of each label ``l`` and
       ``N * r_j`` images in all (``r`` = the train/val/test ratios).
    2. Take the label with the fewest images not yet placed (ties: the lowest label
       index); place each of its unplaced images, in a seeded random order, in the
       split that still wants the most positives of that label; ties go to the split
       that wants the most images, then to a seeded random choice. Each placement
       lowers the wants of that split for every label the image carries.
    3. Repeat until every labelled image is placed; images with no label go, in the
       same random order, to the split that wants the most images.

    The same labels and ``config`` always give the same split. Rare labels are
    placed first because they have the least room for error; frequent ones are
    then balanced by the many images left.

    Args:
        label_matrix: ``[N, L]`` 0/1 labels.
        config: Ratios and seed; defaults to 70/15/15 with seed 0.
        label_names: Names of the labels, used to name a label that is too small.

    Returns:
        Split codes ``[N]`` as uint8 (0 train, 1 val, 2 test).

    Raises:
        DataError: If some split gets no image with (or without) some label.
    """
    config = config or SplitConfig()
    y = np.asarray(label_matrix).astype(bool)
    if y.ndim != 2:
        raise ValueError(f"label matrix of shape {y.shape} is not [N, L]")
    n = len(y)
    ratios = np.array([config.train, config.val, config.test], dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    y = y[order]
    wants = ratios * n
    label_wants = ratios[:, None] * y.sum(axis=0)[None, :]
    unplaced = np.ones(n, dtype=bool)
    left = y.sum(axis=0).astype(np.int64)
    codes = np.empty(n, dtype=np.uint8)

    def place(row: int, by: np.ndarray) -> None:
        best = np.flatnonzero(by == by.max())
        if len(best) > 1:
            best = best[wants[best] == wants[best].max()]
        j = int(best[0] if len(best) == 1 else rng.choice(best))
        carried = y[row]
        codes[row] = j
        unplaced[row] = False
        wants[j] -= 1
        label_wants[j, carried] -= 1
        left[carried] -= 1

    while (active := np.flatnonzero(left > 0)).size:
        label = int(active[np.argmin(left[active])])
        for row in np.flatnonzero(unplaced & y[:, label]):
            place(int(row), label_wants[:, label])
    for row in np.flatnonzero(unplaced):
        place(int(row), wants)
    split = np.empty(n, dtype=np.uint8)
    split[order] = codes
    _check_label_split(np.asarray(label_matrix).astype(bool), split, config, label_names)
    return split


def _check_label_split(
    y: np.ndarray, split: np.ndarray, config: SplitConfig, names: list[str] | None
) -> None:
    """Refuse a split in which some split lacks images with (or without) some label."""
    for code, split_name in enumerate(SPLIT_NAMES):
        part = y[split == code]
        positives = part.sum(axis=0)
        for label in np.flatnonzero((positives == 0) | (positives == len(part))):
            what = f"label {names[label]!r}" if names else f"label index {int(label)}"
            total = int(y[:, label].sum())
            side = "with" if positives[label] == 0 else "without"
            raise DataError(
                f"{what} is on {total} of {len(y)} images: too few for a "
                f"{config.train}/{config.val}/{config.test} split to give the {split_name} "
                f"split an image {side} it; add images or change the ratios"
            )


def split_counts(split: np.ndarray, labels: np.ndarray) -> dict[str, dict[int, int]]:
    """Count images per class in each split, e.g. ``{"train": {0: 3055, 1: 9195}, ...}``."""
    out: dict[str, dict[int, int]] = {}
    for code, name in enumerate(SPLIT_NAMES):
        m = split == code
        values, counts = np.unique(labels[m], return_counts=True)
        out[name] = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    return out
