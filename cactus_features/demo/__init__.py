"""The built-in demo data: a synthetic aerial-cactus dataset in Kaggle's layout.

``make_synthetic_aerial(root)`` writes 32x32 JPEG tiles of desert ground, three
quarters of them with columnar cacti, plus ``train.csv``, ``test/`` and
``sample_submission.csv``, so the whole library can be tried with no download.
"""

from cactus_features.demo.render import render_aerial
from cactus_features.demo.synthetic import SyntheticDataset, make_synthetic_aerial

__all__ = ["SyntheticDataset", "make_synthetic_aerial", "render_aerial"]
