from __future__ import annotations

import pytest
import torch

from cactus_features.backbones.frozen import build_backbone
from cactus_features.backbones.registry import (
    available_backbones,
    build_architecture,
    build_on_meta,
    get_spec,
    strip_classifier,
)
from cactus_features.errors import ConfigError, WeightsError

ALL = available_backbones()


def test_registry_is_torchvision_plus_extras():
    import torchvision

    tv = set(torchvision.models.list_models(module=torchvision.models))
    assert tv <= set(ALL)
    assert "efficientnet_lite0" in ALL and "resnet50" in ALL


@pytest.mark.parametrize("name", ALL)
def test_every_entry_gives_pooled_embeddings_of_its_dim(name):
    spec = get_spec(name)
    res = spec.default_resolution if spec.fixed_resolution else max(spec.min_resolution, 64)
    model = strip_classifier(build_on_meta(name)).eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.zeros(2, 3, res, res, device=device))
    assert out.flatten(1).shape == (2, spec.dim)


@pytest.mark.parametrize(
    "name", ["resnet18", "efficientnet_b0", "mobilenet_v3_small", "squeezenet1_1"]
)
def test_frozen_backbone_on_uint8_batches(name):
    b = build_backbone(name, weights="none", resolution=48, device="cpu")
    assert not b.training
    assert all(not p.requires_grad for p in b.parameters())
    x = torch.randint(0, 256, (3, 20, 28, 3), dtype=torch.uint8)
    y = b(x)
    assert y.shape == (3, b.num_features) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    # deterministic and batch-independent within float tolerance
    assert torch.allclose(b(x[:1]), y[:1], atol=1e-5)


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ConfigError, match="did you mean resnet50"):
        get_spec("resnet5O")


def test_resolution_limits():
    with pytest.raises(ConfigError, match="only takes 224"):
        build_backbone("vit_b_16", weights="none", resolution=128)
    with pytest.raises(ConfigError, match="at least 75"):
        build_backbone("inception_v3", weights="none", resolution=32)


def test_bad_weights_names_and_files(tmp_path):
    with pytest.raises(WeightsError, match="no weights 'IMAGENET9K'"):
        build_backbone("resnet18", weights="IMAGENET9K")
    wrong = tmp_path / "wrong.pth"
    torch.save(build_architecture("resnet18").state_dict(), wrong)
    with pytest.raises(WeightsError, match="does not fit resnet34"):
        build_backbone("resnet34", weights_file=wrong)
    ok = build_backbone("resnet18", weights_file=wrong, resolution=32)
    assert ok.weights.label == "file:wrong.pth" and len(ok.weights.sha256) == 64


def test_failed_download_says_how_to_get_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        build_backbone("resnet18", weights="DEFAULT")
    msg = str(info.value)
    assert "download.pytorch.org" in msg and "--weights-file" in msg and str(tmp_path) in msg
