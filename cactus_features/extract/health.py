"""The feature health check: has the backbone collapsed on this data?"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class HealthReport:
    """Summary of an embeddings matrix.

    Attributes:
        constant_share: Share of dimensions whose std over images is below ``1e-6``
            of the largest dimension's std (or exactly constant).
        zero_share: Share of entries that are exactly zero.
        mean_abs: Mean absolute value of all entries.
        mean_std: Mean over dimensions of the per-dimension std.
        collapsed: Whether the features carry (almost) no information.
        message: A one-line human summary.
    """

    constant_share: float
    zero_share: float
    mean_abs: float
    mean_std: float
    collapsed: bool
    message: str

    def as_dict(self) -> dict:
        """Plain dict for storage in the cache file."""
        return asdict(self)


class HealthStats:
    """Streaming statistics of an ``[N, D]`` matrix, fed block by block of rows.

    Per-dimension mean and variance are merged across blocks with Chan et al.'s
    pairwise update (float64), so the result matches a one-shot computation to
    rounding while memory stays that of one block.

    Args:
        dim: Number of columns ``D``.
    """

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)  # sum of squared deviations from the mean
        self.zeros = 0
        self.abs_sum = 0.0

    def update(self, block: np.ndarray) -> None:
        """Add the next rows ``[n, D]``."""
        x = np.asarray(block, dtype=np.float64)
        n = x.shape[0]
        if n == 0:
            return
        mean = x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * (self.count * n / total)
        self.mean += delta * (n / total)
        self.count = total
        self.zeros += int(np.count_nonzero(x == 0))
        self.abs_sum += float(np.abs(x).sum())

    def report(self, *, collapse_share: float = 0.9) -> HealthReport:
        """The :class:`HealthReport` of all rows so far (see :func:`check_health`)."""
        dim = self.mean.shape[0]
        size = self.count * dim
        std = np.sqrt(self.m2 / self.count) if self.count else np.zeros(dim)
        scale = float(std.max(initial=0.0))
        constant = std <= max(scale * 1e-6, 1e-12)
        constant_share = float(constant.mean()) if dim else 1.0
        zero_share = self.zeros / size if size else 1.0
        mean_abs = self.abs_sum / size if size else 0.0
        collapsed = (
            constant_share >= collapse_share or zero_share >= collapse_share or mean_abs < 1e-6
        )
        if collapsed:
            message = (
                f"COLLAPSED FEATURES: {constant_share:.0%} of dimensions are constant, "
                f"{zero_share:.0%} of values are zero (mean |x| {mean_abs:.2g}); a head trained "
                "on them will be at chance"
            )
        else:
            message = (
                f"features ok: {constant_share:.0%} constant dimensions, {zero_share:.0%} zeros, "
                f"mean |x| {mean_abs:.3g}"
            )
        mean_std = float(std.mean()) if dim else 0.0
        return HealthReport(constant_share, zero_share, mean_abs, mean_std, collapsed, message)


def check_health(
    embeddings: np.ndarray, *, collapse_share: float = 0.9, block_rows: int = 4096
) -> HealthReport:
    """Measure how many embedding dimensions are constant or zero.

    A backbone fed images far below its training resolution can return
    embeddings that are (almost) all zero: EfficientNet-Lite0 on the native
    32x32 cactus images gives a mean of 8e-8 and a linear probe at chance.

    Args:
        embeddings: ``[N, D]`` features.
        collapse_share: Share of constant dimensions (or zero entries) above which
            the features count as collapsed.
        block_rows: Rows converted to float64 at a time (bounds the memory used).

    Returns:
        The report; ``collapsed`` is true when the features are unusable.
    """
    stats = HealthStats(embeddings.shape[1])
    for a in range(0, embeddings.shape[0], block_rows):
        stats.update(embeddings[a : a + block_rows])
    return stats.report(collapse_share=collapse_share)
