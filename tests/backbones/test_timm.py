"""The timm source: names, specs, building, weights (hub cache, local files, random), listing."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

timm = pytest.importorskip("timm")

from safetensors.torch import save_file  # noqa: E402

from cactus_features.backbones import registry  # noqa: E402
from cactus_features.backbones.frozen import build_backbone  # noqa: E402
from cactus_features.backbones.registry import (  # noqa: E402
    build_architecture,
    check_backbone_name,
    get_spec,
    list_backbones,
)
from cactus_features.backbones.sources import timm as timm_source  # noqa: E402
from cactus_features.backbones.sources.timm import TimmSource  # noqa: E402
from cactus_features.backbones.weights import (  # noqa: E402
    describe_weights,
    weights_unavailable,
)
from cactus_features.cli import _register, cli  # noqa: E402
from cactus_features.errors import ConfigError, WeightsError  # noqa: E402
from cactus_features.extract.api import extract_features  # noqa: E402

SAMPLE = [
    "timm/resnet18",
    "timm/efficientnet_b0",
    "timm/mobilenetv3_small_100",
    "timm/vit_tiny_patch16_224",
    "timm/convnext_atto",
]


def _cli(*args: str):
    _register()
    return CliRunner().invoke(cli, list(args))


def _uint8(n: int, side: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=g)


def _headless(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_architecture(name).eval()


@pytest.mark.parametrize("name", SAMPLE)
def test_spec_comes_from_the_pretrained_config_and_dim_from_a_real_forward(name):
    spec = get_spec(name)
    cfg = timm.models.get_pretrained_cfg(name.removeprefix("timm/"))
    assert spec.source == "timm" and not spec.offline
    assert spec.default_resolution == cfg.input_size[-1]
    assert (spec.mean, spec.std, spec.interpolation) == (
        tuple(cfg.mean),
        tuple(cfg.std),
        cfg.interpolation,
    )
    assert spec.weights[0] == "DEFAULT" and cfg.tag in spec.weights
    res = spec.default_resolution if spec.fixed_resolution else 64
    with torch.no_grad():
        out = build_architecture(name).eval()(torch.zeros(1, 3, res, res))
    assert out.shape == (1, spec.dim)


@pytest.mark.parametrize("name", ["timm/resnet18", "timm/mobilenetv3_small_100"])
def test_frozen_backbone_equals_the_plain_model(name):
    b = build_backbone(name, weights="none", resolution=64, device="cpu")
    assert b.weights.label == "random init"
    reference = _headless(name, seed=0)  # random init is seeded with init_seed 0
    x = _uint8(4, 64)
    with torch.no_grad():
        expected = reference(b.preprocess(x))
    got = b(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)
    if name == "timm/resnet18":  # plain BatchNorm2d: folded into the convolutions
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in b.model.modules())


def test_vit_takes_other_resolutions_and_is_unchanged_at_its_own():
    name = "timm/vit_tiny_patch16_224"
    spec = get_spec(name)
    assert not spec.fixed_resolution and spec.min_resolution == 16
    dynamic = _headless(name, seed=3)
    torch.manual_seed(3)
    fixed = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(dynamic(x), fixed(x), atol=1e-5)
        with pytest.raises(AssertionError):  # what timm does without dynamic_img_size
            fixed(torch.randn(1, 3, 48, 48))
    b = build_backbone(name, weights="none", resolution=40, device="cpu")
    assert b(_uint8(2, 32)).shape == (2, 192)


def test_fixed_size_models_refuse_other_resolutions():
    spec = get_spec("timm/swin_tiny_patch4_window7_224")
    assert spec.fixed_resolution and spec.default_resolution == 224
    with pytest.raises(ConfigError, match="only takes 224 px inputs; got --resolution 64"):
        build_backbone("timm/swin_tiny_patch4_window7_224", weights="none", resolution=64)


def test_local_checkpoint_files(tmp_path):
    name = "timm/resnet18"
    model = _headless(name, seed=1)
    headless = tmp_path / "headless.pth"
    torch.save(model.state_dict(), headless)
    b = build_backbone(name, weights_file=headless, resolution=64, device="cpu")
    x = _uint8(3, 64)
    with torch.no_grad():
        expected = model(b.preprocess(x))
    assert torch.allclose(b(x), expected, rtol=1e-4, atol=1e-4)
    assert b.weights.label == "file:headless.pth"
    assert describe_weights(name, "DEFAULT", headless) == (
        "file:headless.pth",
        hashlib.sha256(headless.read_bytes()).hexdigest(),
    )
    # a full timm checkpoint (classifier included), as the hub ships it
    torch.manual_seed(1)
    full = timm.create_model("resnet18", pretrained=False)
    full_file = tmp_path / "model.safetensors"
    save_file(full.state_dict(), str(full_file))
    from_full = build_backbone(name, weights_file=full_file, resolution=64, device="cpu")
    full.reset_classifier(0)
    with torch.no_grad():
        expected_full = full.eval()(from_full.preprocess(x))
    assert torch.allclose(from_full(x), expected_full, rtol=1e-4, atol=1e-4)
    with pytest.raises(WeightsError, match="does not fit timm/resnet34"):
        build_backbone("timm/resnet34", weights_file=headless)


def _fake_hub_file(cache, repo_id: str, state: dict, *, by_hash: bool = True) -> str:
    """Lay a weights file out as the Hugging Face cache does; returns its SHA-256."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    tmp = cache / "tmp.safetensors"
    save_file(state, str(tmp))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if by_hash:
        (repo / "blobs").mkdir()
        blob = repo / "blobs" / digest
        tmp.rename(blob)
        (snapshot / "model.safetensors").symlink_to(blob)
    else:
        tmp.rename(snapshot / "model.safetensors")
    return digest


@pytest.mark.parametrize("by_hash", [True, False])
def test_named_weights_from_the_hub_cache_offline(tmp_path, monkeypatch, by_hash):
    def no_network(*args, **kwargs):
        raise AssertionError("no download expected: the file is cached")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_network)
    torch.manual_seed(5)
    full = timm.create_model("resnet18", pretrained=False)
    digest = _fake_hub_file(tmp_path, "timm/resnet18.a1_in1k", full.state_dict(), by_hash=by_hash)
    source = TimmSource(cache_dir=tmp_path)
    resolved = source.resolve_weights("timm/resnet18", "default")
    assert (resolved.label, resolved.sha256) == ("a1_in1k", digest)
    model = build_architecture("timm/resnet18")
    source.load_weights(model, "timm/resnet18", resolved)
    expected = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    # through the registry's source, with the default cache pointed here
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert describe_weights("timm/resnet18", "a1_in1k") == ("a1_in1k", digest)
    assert weights_unavailable("timm/resnet18", "DEFAULT", allow_download=False) is None
    b = build_backbone("timm/resnet18", resolution=32, device="cpu")
    assert (b.weights.label, b.weights.sha256, b.weights.pretrained) == ("a1_in1k", digest, True)


def test_failed_download_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    calls = []

    def offline(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        raise OSError("network is unreachable")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", offline)
    source = TimmSource(cache_dir=tmp_path / "hub")
    with pytest.raises(WeightsError) as info:
        source.resolve_weights("timm/resnet18", "tv_in1k")
    msg = str(info.value)
    assert "\n" not in msg and "OSError: network is unreachable" in msg
    assert "huggingface-cli download timm/resnet18.tv_in1k model.safetensors" in msg
    assert str(tmp_path / "hub") in msg and "--weights-file" in msg
    assert calls == [("timm/resnet18.tv_in1k", "model.safetensors")]
    with pytest.raises(WeightsError, match="downloads are off"):
        source.resolve_weights("timm/resnet18", "tv_in1k", allow_download=False)
    assert len(calls) == 1  # allow_download=False never tries
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    reason = weights_unavailable("timm/resnet18", "DEFAULT", allow_download=False)
    assert reason is not None and "downloads are off" in reason and len(calls) == 1


def test_weights_names_and_unknown_names():
    with pytest.raises(WeightsError, match="no weights 'IN9K'; choose one of DEFAULT, a1_in1k"):
        describe_weights("timm/resnet18", "IN9K")
    assert describe_weights("timm/resnet18", "none") == ("random init", "")
    with pytest.raises(ConfigError, match="use --backbone timm/resnet18 --weights a1_in1k"):
        check_backbone_name("timm/resnet18.a1_in1k")
    with pytest.raises(ConfigError, match="did you mean timm/resnet18"):
        check_backbone_name("timm/resnet18x")


def test_missing_timm_says_how_to_install(monkeypatch):
    timm_source._model_names.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    try:
        with pytest.raises(ConfigError) as info:
            check_backbone_name("timm/resnet18")
        assert str(info.value) == (
            "timm/<model> backbones need timm, which is not installed: "
            'pip install "cactus-features[timm]"'
        )
        result = _cli("backbones", "--source", "timm")
        assert result.exit_code == 2 and 'pip install "cactus-features[timm]"' in result.output
        assert "efficientnet_lite0" in list_backbones()  # the rest still lists
        monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
        everything = _cli("backbones", "efficientnet_lite*")
        assert everything.exit_code == 0 and "efficientnet_lite0" in everything.output
        assert "timm is not installed" in everything.output
    finally:
        timm_source._model_names.cache_clear()


def test_importing_the_registry_does_not_import_timm():
    code = (
        "import sys, cactus_features.backbones.frozen, cactus_features.cli; "
        "from cactus_features.backbones.registry import get_spec; get_spec('resnet18'); "
        "assert 'timm' not in sys.modules, 'timm imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_listing_filters_by_source_and_pattern():
    timm_names = list_backbones("timm")
    assert len(timm_names) == len(timm.list_models()) and "timm/resnet18" in timm_names
    assert list_backbones("lite") == [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ]
    assert list_backbones("torchvision", "resnet1*") == ["resnet101", "resnet152", "resnet18"]
    assert "timm/resnet18" in list_backbones(pattern="*resnet18")
    with pytest.raises(ConfigError, match="--source 'keras'"):
        list_backbones("keras")
    quick = _cli("backbones", "timm/convnext_atto*")
    assert quick.exit_code == 0, quick.output
    rows = [line.split() for line in quick.output.splitlines()[1:]]
    assert ["timm/convnext_atto", "-", "224", "DEFAULT,", "d2_in1k"] in rows
    with_dims = _cli("backbones", "--dims", "timm/convnext_atto")
    assert with_dims.output.splitlines()[1].split()[:3] == ["timm/convnext_atto", "320", "224"]
    tv = _cli("backbones", "--source", "torchvision", "resnet1*")
    assert [line.split()[0] for line in tv.output.splitlines()[1:]] == [
        "resnet101",
        "resnet152",
        "resnet18",
    ]
    assert registry.preview("resnet18", dims=False).dim == 512  # built-ins keep their dims


def test_extract_features_end_to_end(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    kw = dict(labels=csv_path, weights="none", cache_dir=tmp_path / "c", chunk_size=16, quiet=True)
    (fs,) = extract_features(img_dir, "timm/mobilenetv3_small_100@32", **kw)
    assert fs.embeddings.shape == (60, 1024) and np.isfinite(fs.embeddings).all()
    assert fs.key["backbone"] == "timm/mobilenetv3_small_100" and fs.key["init_seed"] == 0
    assert fs.path.name.startswith("timm-mobilenetv3_small_100_random-init_32px")
    (again,) = extract_features(img_dir, "timm/mobilenetv3_small_100@32", **kw)
    assert again.path == fs.path
    np.testing.assert_array_equal(again.embeddings, fs.embeddings)
