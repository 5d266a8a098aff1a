"""Stage 2: train identical small heads on cached embeddings, in seconds.

* :func:`train_head` -- one head (linear or MLP; Adam or L-BFGS) on one feature
  cache (or a concatenation), saved as a run file next to the cache.
* :func:`sweep_heads` -- a grid of learning rates x weight decays x seeds trained
  together in one batched computation; the best on validation is saved.
* :func:`predict_scores` -- P(positive class) of new embeddings from a saved run.

Modules: ``config`` (HeadConfig), ``class_weights``, ``standardize``, ``models``
(head modules, stacked parameters), ``adam`` (stacked Adam), ``stacked`` (batched
forward/backward), ``fused_linear`` (fast CPU linear path), ``engine`` (training
loop, checkpoint selection), ``lbfgs``, ``auc``, ``data``, ``runs``, ``api``, ``sweep``.
"""

from cactus_features.heads.api import TrainResult, predict_scores, train_head, train_with_config
from cactus_features.heads.class_weights import compute_class_weights, parse_class_weight
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.standardize import Standardizer
from cactus_features.heads.sweep import SweepResult, sweep_heads

__all__ = [
    "HeadConfig",
    "Standardizer",
    "SweepResult",
    "TrainResult",
    "compute_class_weights",
    "parse_class_weight",
    "predict_scores",
    "sweep_heads",
    "train_head",
    "train_with_config",
]
