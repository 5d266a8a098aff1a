"""Shared fixtures: small generated datasets of mixed sizes and modes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "aerial-cactus"


def make_image(
    rng: np.random.Generator, label: int, size: int = 32, mode: str = "RGB"
) -> Image.Image:
    """A synthetic image whose label is visible: positives have a bright vertical bar."""
    arr = rng.integers(40, 120, size=(size, size, 3), dtype=np.uint8)
    if label == 1:
        c = size // 2
        arr[:, max(0, c - size // 8) : c + size // 8, 1] = 230
    img = Image.fromarray(arr, "RGB")
    if mode == "RGB":
        return img
    if mode == "I;16":
        grey = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey)
    return img.convert(mode)


def write_kaggle(
    root: Path,
    n: int = 60,
    *,
    pos_share: float = 0.75,
    seed: int = 0,
    mixed: bool = False,
) -> tuple[Path, Path]:
    """Write ``root/train/*.png|jpg`` and ``root/train.csv`` (id,has_cactus)."""
    rng = np.random.default_rng(seed)
    img_dir = root / "train"
    img_dir.mkdir(parents=True)
    labels = (rng.random(n) < pos_share).astype(int)
    labels[:2] = [0, 1]
    modes = ["RGB", "L", "RGBA", "P", "I;16"]
    sizes = [32, 40, 24]
    rows = []
    for i, lab in enumerate(labels):
        mode = modes[i % len(modes)] if mixed else "RGB"
        size = sizes[i % len(sizes)] if mixed else 32
        name = f"img{i:04d}.png" if mixed else f"img{i:04d}.jpg"
        make_image(rng, int(lab), size, mode).save(img_dir / name)
        rows.append((name, int(lab)))
    csv_path = root / "train.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "has_cactus"])
        w.writerows(rows)
    return img_dir, csv_path


@pytest.fixture
def kaggle_data(tmp_path: Path) -> tuple[Path, Path]:
    """60 RGB 32x32 JPEGs in the Kaggle layout, imbalanced 3:1."""
    return write_kaggle(tmp_path / "ds")


@pytest.fixture
def mixed_data(tmp_path: Path) -> tuple[Path, Path]:
    """60 PNGs of mixed sizes (24, 32, 40) and modes (RGB, L, RGBA, P, I;16)."""
    return write_kaggle(tmp_path / "mixed", mixed=True)


def write_digits(root: Path) -> Path:
    """Write scikit-learn's digits (1,797 8x8 images, 10 classes) as ``root/<digit>/<n>.png``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for n, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(int(target))
        folder.mkdir(parents=True, exist_ok=True)
        grey = np.clip(np.rint(pixels * (255 / 16)), 0, 255).astype(np.uint8)
        Image.fromarray(grey, "L").save(folder / f"{n:04d}.png")
    return root


@pytest.fixture
def digits_folders(tmp_path: Path) -> Path:
    """scikit-learn's digits as class folders: a real 10-class image set."""
    return write_digits(tmp_path / "digits")
