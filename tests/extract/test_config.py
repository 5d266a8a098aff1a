"""ExtractConfig: validation, and cache keys equal to those existing caches were written with."""

from __future__ import annotations

from pathlib import Path

import pytest

from cactus_features.data.split import SplitConfig
from cactus_features.errors import ConfigError
from cactus_features.extract.cache import entry_path
from cactus_features.extract.config import BackboneRequest, ExtractConfig
from cactus_features.store.format import key_hash

FP = "0123456789abcdef" * 4

# (config, backbone, key hash, file name) as computed by the inline key code of
# extract_features before ExtractConfig existed (commit 51acb33); a change here
# would make every existing cache miss.
PINNED = [
    (
        dict(weights="IMAGENET1K_V1"),
        "resnet18@32",
        "5a85e0467da3",
        "resnet18_IMAGENET1K_V1_32px_weights_fp32_5a85e0467da3.h5",
    ),
    (
        dict(weights="IMAGENET1K_V1"),
        "resnet50",
        "7f78677bf131",
        "resnet50_IMAGENET1K_V1_224px_weights_fp32_7f78677bf131.h5",
    ),
    (
        dict(
            weights="none",
            normalization="dataset",
            dtype="float16",
            fingerprint="size",
            skip_bad_images=True,
            split=SplitConfig(val=0.2, test=0.1, seed=3),
            resolution=40,
        ),
        "efficientnet_lite0",
        "ab6c3d6fdef2",
        "efficientnet_lite0_random-init_40px_dataset_fp32_ab6c3d6fdef2.h5",
    ),
]


@pytest.mark.parametrize(("options", "backbone", "digest", "filename"), PINNED)
def test_entry_key_hash_is_the_one_existing_caches_have(options, backbone, digest, filename):
    config = ExtractConfig(data="unused", backbones=backbone, **options)
    (request,) = config.requests()
    key = config.entry_key(request, dataset_fingerprint=FP, precision="fp32")
    assert key_hash(key) == digest
    assert entry_path(Path("c"), "tiny-01234567", key) == Path("c/tiny-01234567") / filename


def test_requests_take_defaults_and_a_single_backbone():
    config = ExtractConfig(data="d", backbones="resnet18@64", weights="none", resolution=32)
    assert config.requests() == [BackboneRequest("resnet18", "none", None, 64)]
    many = ExtractConfig(data="d", backbones=["resnet18", BackboneRequest("resnet50")])
    assert [r.name for r in many.requests()] == ["resnet18", "resnet50"]
    assert many.split_config == SplitConfig()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (dict(backbones=[]), "no backbone given"),
        (dict(dtype="float64"), "--dtype 'float64'"),
        (dict(chunk_size=0), "--chunk-size 0"),
        (dict(batch_size=0), "--batch-size 0"),
        (dict(workers=0), "--workers 0"),
    ],
)
def test_validate_refuses_bad_options(options, needle):
    config = ExtractConfig(**{"data": "d", "backbones": "resnet18", **options})
    with pytest.raises(ConfigError, match=needle):
        config.validate()


def test_entry_key_refuses_a_resolution_below_one():
    config = ExtractConfig(data="d", backbones="resnet18", weights="none", resolution=0)
    (request,) = config.requests()
    with pytest.raises(ConfigError, match="at least 1 px"):
        config.entry_key(request, dataset_fingerprint=FP, precision="fp32")
