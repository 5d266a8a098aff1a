"""ExtractConfig: validation, and cache keys: pinned, and holding the applied pre-processing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cactus_features.backbones.frozen import build_backbone
from cactus_features.backbones.preprocessing import PREPROCESSING_VERSION, Preprocessing
from cactus_features.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from cactus_features.data.split import SplitConfig
from cactus_features.errors import ConfigError
from cactus_features.extract import config as config_module
from cactus_features.extract.cache import entry_path
from cactus_features.extract.config import BackboneRequest, ExtractConfig
from cactus_features.store.format import key_hash

FP = "0123456789abcdef" * 4

# (config, backbone, key hash, file name, hash of the same key before preprocessing
# version 2). The key hash must not change for the same inputs or every existing cache
# misses; these pins were updated once, deliberately, when the key began to record
# the applied pre-processing and the feature selection (the old hashes are those of commit
# 51acb33's inline key code).
PINNED = [
    (
        dict(weights="IMAGENET1K_V1"),
        "resnet18@32",
        "a788bde7edfd",
        "resnet18_IMAGENET1K_V1_32px_weights_fp32_a788bde7edfd.h5",
        "5a85e0467da3",
    ),
    (
        dict(weights="IMAGENET1K_V1"),
        "resnet50",
        "89565e147410",
        "resnet50_IMAGENET1K_V1_224px_weights_fp32_89565e147410.h5",
        "7f78677bf131",
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
        "6669a41feffb",
        "efficientnet_lite0_random-init_40px_dataset_fp32_6669a41feffb.h5",
        "ab6c3d6fdef2",
    ),
]


def _key(backbone: str = "resnet18@32", **options) -> dict:
    config = ExtractConfig(data="unused", backbones=backbone, **options)
    (request,) = config.requests()
    return config.entry_key(request, dataset_fingerprint=FP, precision="fp32")


@pytest.mark.parametrize(("options", "backbone", "digest", "filename", "old"), PINNED)
def test_entry_key_hash_is_pinned(options, backbone, digest, filename, old):
    key = _key(backbone, **options)
    assert key_hash(key) == digest
    assert entry_path(Path("c"), "tiny-01234567", key) == Path("c/tiny-01234567") / filename


@pytest.mark.parametrize(("options", "backbone", "digest", "filename", "old"), PINNED)
def test_entries_written_before_preprocessing_was_recorded_never_match(
    options, backbone, digest, filename, old
):
    key = _key(backbone, **options)
    before = {k: v for k, v in key.items() if k not in ("preprocessing", "features")}
    assert key_hash(before) == old  # the old key is exactly today's minus those fields
    assert key_hash(key) != old
    assert key["preprocessing"]["version"] == PREPROCESSING_VERSION == 2


def test_key_records_the_applied_preprocessing():
    resnet = _key(weights="IMAGENET1K_V1")["preprocessing"]
    assert resnet == {
        "version": 2,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bilinear",
        "antialias": "shrink",
        "resize": "stretch",
    }
    lite = _key("efficientnet_lite1@64", weights="DEFAULT")["preprocessing"]
    assert (lite["mean"], lite["std"]) == ([127 / 255] * 3, [128 / 255] * 3)
    assert _key(normalization="none")["preprocessing"]["std"] == [1.0] * 3
    assert _key(normalization="dataset")["preprocessing"]["mean"] == "train-split"


@pytest.mark.parametrize(
    "change",
    [
        dict(mean=(0.5, 0.5, 0.5)),
        dict(std=(0.5, 0.5, 0.5)),
        dict(interpolation="bicubic"),
        dict(antialias="never"),
        dict(resize="center-crop"),
        dict(version=3),
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_change_of_any_preprocessing_field_is_another_entry(monkeypatch, change):
    base = _key(weights="none")
    recorded = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear")

    def changed(*args, **kwargs):
        return Preprocessing(**{**recorded, **change})

    monkeypatch.setattr(config_module, "Preprocessing", changed)
    other = _key(weights="none")
    assert other["preprocessing"] != base["preprocessing"]
    assert key_hash(other) != key_hash(base)


def test_feature_selection_is_part_of_the_key():
    last, stage = _key(weights="none"), _key("resnet18@32+stage-2", weights="none")
    assert (last["features"], stage["features"]) == ("last", "stage-2")
    assert stage["name"] == "resnet18@32+stage-2" and last["name"] == "resnet18@32"
    name = entry_path(Path("c"), "d", stage).name
    assert name == f"resnet18_random-init_32px_stage-2_weights_fp32_{key_hash(stage)}.h5"
    assert key_hash(last) != key_hash(stage) != key_hash(_key("resnet18@32+concat2"))
    assert BackboneRequest.parse("resnet18+concat2").features == "concat2"
    with pytest.raises(ConfigError, match="features 'layer3': use last, stage-K"):
        BackboneRequest.parse("resnet18@32+layer3")
    with pytest.raises(ConfigError, match="ResNet has 4 stages"):
        _key("resnet18@32+stage-5", weights="none")
    with pytest.raises(ConfigError, match="VisionTransformer: no stages"):
        _key("vit_b_16+stage-2", weights="none")


def test_key_preprocessing_is_what_the_built_backbone_applies():
    for backbone, options in (
        ("resnet18@32", dict(weights="none")),
        ("efficientnet_lite0@32", dict(weights="none")),
        ("efficientnet_lite0@32", dict(weights="DEFAULT")),
        ("resnet18@40", dict(weights="none", normalization="none")),
    ):
        key = _key(backbone, **options)
        built = build_backbone(
            key["backbone"],
            weights=options["weights"],
            resolution=key["resolution"],
            normalization=options.get("normalization", "weights"),
            device="cpu",
        )
        assert built.preprocessing.as_key() == key["preprocessing"], backbone


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
