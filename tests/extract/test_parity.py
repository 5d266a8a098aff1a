"""Value parity: what ``extract_features`` stores equals a plain eval-mode forward.

The library's path folds BatchNorm into the convolutions, runs channels-last,
fuses the 0-1 scaling with the normalisation (on whichever side of the resize has
fewer pixels) and batches images of a size together. The reference is none of
that: torchvision transforms on each uint8 image (to float, resize, normalise) and
the same weights in the unmodified torchvision model, eval mode, classifier
replaced by the identity.

Tolerance: every difference is float32 rounding (eps 1.2e-7) reordered by the
folding, the layout and the fused normalisation, accumulated over 20-50 layers.
Measured here: cosine > 1 - 1e-9 and max relative error (max |a - b| / max |b|,
per image) 1.4e-6 to 4.0e-6 over the 16 images, per model (also for the pooled
output of an earlier stage, ``+stage-2``). The test allows
1 - 1e-6 and 1e-4, 25 times the largest error seen, which still fails for any real
pre-processing difference (measured: ImageNet mean/std instead of the Lite ones:
cosine 0.70, relative error 0.61; no antialiasing when shrinking: cosine 0.97,
relative error 0.13 (Lite0) and 0.35 (ResNet-18)).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from cactus_features import extract_features
from cactus_features.backbones.sources.lite import (
    LITE0,
    build_lite_architecture,
    load_lite_weights,
    packaged_weights_file,
)
from cactus_features.backbones.spec import IMAGENET_MEAN, IMAGENET_STD

SIDE = 64
COSINE_TOL = 1e-6
REL_TOL = 1e-4


def _images(root: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """16 smooth-plus-noise images: 8 of 48 px (upscaled to 64) and 8 of 80 px (shrunk)."""
    rng = np.random.default_rng(0)
    folder = root / "train"
    folder.mkdir(parents=True)
    arrays, rows = {}, []
    for i in range(16):
        side = 48 if i < 8 else 80
        yy, xx = np.mgrid[0:side, 0:side] / side
        base = np.stack([yy, xx, (yy + xx) / 2], -1) * 150 + 40
        arr = np.clip(base + rng.normal(0, 30, (side, side, 3)), 0, 255).astype(np.uint8)
        name = f"img{i:02d}.png"
        Image.fromarray(arr).save(folder / name)
        arrays[name] = arr
        rows.append((name, i % 2))
    labels = root / "train.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([("id", "has_cactus"), *rows])
    return folder, labels, arrays


def _calibrated(model: nn.Module, seed: int) -> nn.Module:
    """Random weights with BatchNorm statistics of real-ish inputs (not a collapsed model)."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, SIDE, SIDE))
    return model.eval()


def _reference(model: nn.Module, arrays: dict[str, np.ndarray], mean, std) -> np.ndarray:
    transform = v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.Resize((SIDE, SIDE), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
            v2.Normalize(mean, std),
        ]
    )
    with torch.no_grad():
        batch = torch.stack(
            [transform(torch.from_numpy(a).permute(2, 0, 1)) for a in arrays.values()]
        )
        return model(batch).flatten(1).numpy()


def _plain(name: str, tmp_path: Path) -> tuple[nn.Module, str, str | None, tuple]:
    """``(reference model, weights, weights file, (mean, std))`` for one backbone.

    ``+stage-2`` (the stage before the last) is the model with its last stage replaced
    by the identity, so its own pooling applies to the stage before.
    """
    name, _, features = name.partition("+")
    if name == "efficientnet_lite0":
        model = build_lite_architecture(LITE0)
        load_lite_weights(model, packaged_weights_file(LITE0), LITE0, expected_sha256=None)
        weights, path, stats = "DEFAULT", None, (LITE0.weights.mean, LITE0.weights.std)
    else:
        model = _calibrated(getattr(torchvision.models, name)(), seed=1)
        path = tmp_path / f"{name}.pth"
        torch.save(model.state_dict(), path)
        weights, stats = "none", (IMAGENET_MEAN, IMAGENET_STD)
    if name.startswith("resnet"):
        model.fc = nn.Identity()
        if features == "stage-2":
            model.layer4 = nn.Identity()
    else:
        model.classifier = nn.Identity()
        if features == "stage-2":
            model.features[-1] = nn.Identity()
    return model.eval(), weights, path and str(path), stats


@pytest.mark.filterwarnings("ignore::cactus_features.extract.api.CollapsedFeaturesWarning")
@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "efficientnet_b0",
        "efficientnet_lite0",
        "resnet18+stage-2",
        "efficientnet_lite0+stage-2",
    ],
)
def test_extractor_equals_a_plain_eval_forward(name, tmp_path):
    folder, labels, arrays = _images(tmp_path / "data")
    model, weights, weights_file, (mean, std) = _plain(name, tmp_path)
    (fs,) = extract_features(
        folder,
        name.replace("+", f"@{SIDE}+") if "+" in name else f"{name}@{SIDE}",
        labels=labels,
        weights=weights,
        weights_file=weights_file,
        cache_dir=tmp_path / "cache",
        batch_size=5,  # batches that straddle the two image sizes
        device="cpu",
        precision="fp32",
        quiet=True,
    )
    assert list(fs.ids) == list(arrays)
    assert fs.key["preprocessing"]["mean"] == list(mean)
    ours = np.asarray(fs.embeddings, dtype=np.float64)
    ref = _reference(model, arrays, mean, std).astype(np.float64)
    assert np.abs(ref).max() > 1e-3  # a live model, not collapsed features
    cosine = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    rel = np.abs(ours - ref).max(1) / np.abs(ref).max(1)
    print(f"{name}: min cosine {cosine.min():.9f}, max rel err {rel.max():.2e}")
    assert cosine.min() > 1 - COSINE_TOL
    assert rel.max() < REL_TOL
