from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cactus_features.backbones.lite0 import (
    LITE0_SHA256,
    build_lite0_architecture,
    load_lite0_weights,
    packaged_weights_path,
)
from cactus_features.backbones.registry import IMAGENET_MEAN, IMAGENET_STD
from cactus_features.backbones.statedict import sha256_file
from cactus_features.errors import WeightsError


def test_packaged_file_has_pinned_hash():
    assert sha256_file(packaged_weights_path()) == LITE0_SHA256


@pytest.mark.parametrize(
    ("image", "expected"),
    [("chelsea", {281, 282, 285}), ("coffee", {967, 968, 504})],  # cats / espresso, cup, mug
)
def test_lite0_classifies_real_photos(image, expected):
    data = pytest.importorskip("skimage.data")
    model = build_lite0_architecture().eval()
    load_lite0_weights(model, packaged_weights_path(), expected_sha256=LITE0_SHA256)
    x = torch.from_numpy(np.ascontiguousarray(getattr(data, image)())).permute(2, 0, 1)[None] / 255
    x = F.interpolate(x.float(), size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert int(probs.argmax()) in expected
    assert float(probs.max()) > 0.5


def test_tampered_file_is_refused(tmp_path):
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(packaged_weights_path().read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the pinned"):
        load_lite0_weights(build_lite0_architecture(), bad, expected_sha256=LITE0_SHA256)
