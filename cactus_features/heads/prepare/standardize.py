"""Input standardisation with training-split statistics, saved with the head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STD_FLOOR = 1e-6
"""Features whose training std is below this are only centred (their std is set to 1)."""


@dataclass
class Standardizer:
    """``x -> (x - mean) / std`` with float32 statistics.

    Attributes:
        mean: Per-feature mean ``[D]`` (float32).
        std: Per-feature std ``[D]`` (float32, never below :data:`STD_FLOOR`).
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(
        cls, x_train: np.ndarray, floor: float = STD_FLOOR, scale: str = "feature"
    ) -> Standardizer:
        """Statistics of the training rows (population std, as sklearn's StandardScaler).

        Near-constant features (std < ``floor``) get std 1, so they are centred but
        not blown up on other splits.

        Args:
            x_train: Training embeddings ``[N, D]``; only these rows are used.
            floor: Smallest std that is divided by.
            scale: ``"feature"``: each feature's own std; ``"global"``: every feature
                divided by the root of the mean per-feature variance (one number; the
                features' relative scales are kept).

        Returns:
            The fitted standardiser.
        """
        x = np.asarray(x_train)
        mean = np.zeros(x.shape[1])
        sq = np.zeros(x.shape[1])
        step = max(1, (1 << 22) // max(1, x.shape[1]))  # ~32 MB of float64 per chunk
        for a in range(0, x.shape[0], step):
            mean += x[a : a + step].sum(axis=0, dtype=np.float64)
        mean /= max(1, x.shape[0])
        for a in range(0, x.shape[0], step):
            sq += np.square(x[a : a + step].astype(np.float64) - mean).sum(axis=0)
        std = np.sqrt(sq / max(1, x.shape[0]))
        if scale == "global":
            std = np.full_like(std, np.sqrt(np.mean(np.square(std))))
        std[std < floor] = 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32))

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Standardizer | None:
        """Rebuild from a run file's ``standardize`` group (``None`` when empty)."""
        if not state:
            return None
        return cls(np.asarray(state["mean"], np.float32), np.asarray(state["std"], np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise rows ``[N, D]`` into a new float32 array."""
        out = np.subtract(x, self.mean, dtype=np.float32)
        out /= self.std
        return out

    def state(self) -> dict[str, np.ndarray]:
        """The statistics as saved in a run file."""
        return {"mean": self.mean, "std": self.std}
