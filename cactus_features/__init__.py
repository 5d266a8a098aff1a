"""cactus-features: compare frozen image backbones fast.

Stage one extracts pooled embeddings once into an HDF5 cache
(:func:`extract_features`), stage two trains identical heads on them in seconds
(:func:`train_head`), stage three compares backbones from saved predictions
(:func:`compare`).
"""

from cactus_features._version import __version__
from cactus_features.data.split import SplitConfig
from cactus_features.extract.api import BackboneRequest, extract_features
from cactus_features.features import FeatureSet, concat_features, load_features

__all__ = [
    "BackboneRequest",
    "FeatureSet",
    "SplitConfig",
    "__version__",
    "concat_features",
    "extract_features",
    "load_features",
]
