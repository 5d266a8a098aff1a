from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cactus_features.data.decode import BadImageError, decode_image


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16", "1", "CMYK", "LA", "F"])
def test_any_mode_becomes_rgb_uint8(tmp_path, mode):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    elif mode == "F":
        img = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0)
    else:
        img = base.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("F", "CMYK", "I;16") else "x.png")
    img.save(path)
    arr = decode_image(path)
    assert arr.shape == (9, 7, 3) and arr.dtype == np.uint8
    if mode in ("L", "I;16", "F"):
        expect = np.asarray(base.convert("L"))
        assert np.abs(arr[:, :, 0].astype(int) - expect).max() <= 1


def test_bad_files_name_themselves(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(BadImageError, match=r"zero\.jpg: zero-byte"):
        decode_image(tmp_path / "zero.jpg")
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(good)
    (tmp_path / "trunc.jpg").write_bytes(good.read_bytes()[:300])
    with pytest.raises(BadImageError, match=r"trunc\.jpg: cannot decode"):
        decode_image(tmp_path / "trunc.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(BadImageError, match="skip-bad-images"):
        decode_image(tmp_path / "text.jpg")
