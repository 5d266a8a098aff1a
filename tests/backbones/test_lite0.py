from __future__ import annotations

import pytest

from cactus_features.backbones.lite0 import (
    LITE0_SHA256,
    build_lite0_architecture,
    load_lite0_weights,
    packaged_weights_path,
)
from cactus_features.backbones.statedict import sha256_file
from cactus_features.errors import WeightsError


def test_packaged_file_has_pinned_hash():
    assert sha256_file(packaged_weights_path()) == LITE0_SHA256


def test_tampered_file_is_refused(tmp_path):
    bad = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(packaged_weights_path().read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the pinned"):
        load_lite0_weights(build_lite0_architecture(), bad, expected_sha256=LITE0_SHA256)
