"""cactus-features: compare frozen image backbones fast.

Stage one extracts pooled embeddings once into an HDF5 cache
(:func:`extract_features`), stage two trains identical heads on them in seconds
(:func:`train_head`), stage three compares backbones from saved predictions
(:func:`compare`). :func:`run_study` does all three.

Names are imported on first use, so ``import cactus_features`` does not load
PyTorch until a function that needs it is called.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cactus_features._version import __version__

_EXPORTS = {
    "BackboneRequest": "cactus_features.extract.api",
    "extract_features": "cactus_features.extract.api",
    "FeatureSet": "cactus_features.features",
    "load_features": "cactus_features.features",
    "concat_features": "cactus_features.features",
    "SplitConfig": "cactus_features.data.split",
    "train_head": "cactus_features.heads",
    "sweep_heads": "cactus_features.heads",
    "predict_scores": "cactus_features.heads",
    "TrainResult": "cactus_features.heads",
    "load_run": "cactus_features.runfile",
    "compare": "cactus_features.report",
    "StudyConfig": "cactus_features.study.config",
    "load_study": "cactus_features.study.config",
    "run_study": "cactus_features.study.runner",
    "predict_folder": "cactus_features.study.predict",
    "CactusFeaturesWarning": "cactus_features.notices",
    "CollapsedFeaturesWarning": "cactus_features.notices",
    "ConvergenceWarning": "cactus_features.notices",
}

__all__ = [
    "BackboneRequest",
    "CactusFeaturesWarning",
    "CollapsedFeaturesWarning",
    "ConvergenceWarning",
    "FeatureSet",
    "SplitConfig",
    "StudyConfig",
    "TrainResult",
    "__version__",
    "compare",
    "concat_features",
    "extract_features",
    "load_features",
    "load_run",
    "load_study",
    "predict_folder",
    "predict_scores",
    "run_study",
    "sweep_heads",
    "train_head",
]

if TYPE_CHECKING:  # pragma: no cover
    from cactus_features.data.split import SplitConfig
    from cactus_features.extract.api import BackboneRequest, extract_features
    from cactus_features.features import FeatureSet, concat_features, load_features
    from cactus_features.heads import TrainResult, predict_scores, sweep_heads, train_head
    from cactus_features.notices import (
        CactusFeaturesWarning,
        CollapsedFeaturesWarning,
        ConvergenceWarning,
    )
    from cactus_features.report import compare
    from cactus_features.runfile import load_run
    from cactus_features.study.config import StudyConfig, load_study
    from cactus_features.study.predict import predict_folder
    from cactus_features.study.runner import run_study


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access (PEP 562)."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cactus_features' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
