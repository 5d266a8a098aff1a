from __future__ import annotations

import errno
import logging
import os

import h5py
import numpy as np
import pytest

from cactus_features import extract_features, load_features
from cactus_features.data.split import SplitConfig
from cactus_features.errors import CacheError, DataError
from cactus_features.extract.api import CollapsedFeaturesWarning

BACKBONES = ["resnet18", "efficientnet_b0", "mobilenet_v3_small", "squeezenet1_1"]


@pytest.mark.parametrize("name", BACKBONES)
def test_extract_mixed_sizes_and_modes(mixed_data, tmp_path, name):
    img_dir, csv_path = mixed_data
    (fs,) = extract_features(
        img_dir,
        f"{name}@40",
        labels=csv_path,
        weights="none",
        cache_dir=tmp_path / "c",
        chunk_size=16,
        quiet=True,
    )
    assert fs.embeddings.shape == (60, fs.dim)
    assert np.isfinite(fs.embeddings).all()
    assert fs.key["weights"] == "random init" and fs.key["resolution"] == 40
    assert fs.class_names == ["0", "1"]
    assert set(np.unique(fs.split)) == {0, 1, 2}
    # readable with plain h5py
    with h5py.File(fs.path, "r") as f:
        assert f["embeddings"].shape == (60, fs.dim)
        assert f["ids"].asstr()[0] == "img0000.png"
        assert f.attrs["complete"]


def test_two_backbones_share_ids_split_and_are_cache_hits(kaggle_data, tmp_path, caplog):
    img_dir, csv_path = kaggle_data
    cache = tmp_path / "c"
    a, b = extract_features(
        img_dir,
        ["resnet18@32", "efficientnet_b0@32"],
        labels=csv_path,
        weights="none",
        cache_dir=cache,
        quiet=True,
    )
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.split, b.split)
    assert a.path.parent == b.path.parent and a.path != b.path
    mtime = a.path.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="cactus_features"):
        (again,) = extract_features(
            img_dir, "resnet18@32", labels=csv_path, weights="none", cache_dir=cache, quiet=True
        )
    assert "cache hit" in caplog.text and "no model run" in caplog.text
    assert again.path == a.path and a.path.stat().st_mtime_ns == mtime
    assert np.array_equal(again.embeddings, a.embeddings)


def test_changes_are_never_served_from_a_stale_entry(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    cache = tmp_path / "c"
    kw = dict(labels=csv_path, weights="none", cache_dir=cache, quiet=True)
    (base,) = extract_features(img_dir, "resnet18@32", **kw)
    (res,) = extract_features(img_dir, "resnet18@40", **kw)
    (norm,) = extract_features(img_dir, "resnet18@32", normalization="dataset", **kw)
    (seed,) = extract_features(img_dir, "resnet18@32", split=SplitConfig(seed=1), **kw)
    # change one image's pixels (same file name, same label)
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 10, 10)).save(img_dir / "img0005.jpg")
    (changed,) = extract_features(img_dir, "resnet18@32", **kw)
    paths = {base.path, res.path, norm.path, seed.path, changed.path}
    assert len(paths) == 5
    assert not np.allclose(changed.embeddings[5], base.embeddings[5])
    assert np.allclose(changed.embeddings[6], base.embeddings[6], atol=1e-5)


def test_split_and_stats_are_stored(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    (fs,) = extract_features(
        img_dir,
        "resnet18@32",
        labels=csv_path,
        weights="none",
        cache_dir=tmp_path,
        quiet=True,
        normalization="dataset",
    )
    stats = fs.attrs["dataset_stats"]
    assert len(stats["mean"]) == 3 and all(0 < m < 1 for m in stats["mean"])
    assert np.allclose(fs.attrs["model_info"]["mean"], stats["mean"])
    assert fs.attrs["split_config"] == SplitConfig().as_dict()
    for code in (0, 1, 2):
        assert set(fs.labels[fs.split == code]) == {0, 1}


def test_collapsed_features_warn_loudly(kaggle_data, tmp_path, monkeypatch):
    img_dir, csv_path = kaggle_data
    from cactus_features.extract import pipeline

    monkeypatch.setattr(
        pipeline,
        "embed_chunk",
        lambda b, imgs, *args, **kw: np.zeros((len(imgs), b.num_features), np.float32),
    )
    with pytest.warns(CollapsedFeaturesWarning, match="COLLAPSED"):
        (fs,) = extract_features(
            img_dir, "resnet18@32", labels=csv_path, weights="none", cache_dir=tmp_path, quiet=True
        )
    assert fs.attrs["health"]["collapsed"] is True


def test_bad_images_fail_with_names_or_are_skipped(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    (img_dir / "img0003.jpg").write_bytes(b"")
    (img_dir / "img0007.jpg").write_bytes((img_dir / "img0008.jpg").read_bytes()[:200])
    kw = dict(labels=csv_path, weights="none", cache_dir=tmp_path / "c", quiet=True)
    with pytest.raises(DataError, match=r"2 images cannot be decoded.*img0003\.jpg"):
        extract_features(img_dir, "resnet18@32", **kw)
    assert not any((tmp_path / "c").rglob("*.h5"))
    (fs,) = extract_features(img_dir, "resnet18@32", skip_bad_images=True, **kw)
    assert len(fs) == 58 and "img0003.jpg" not in set(fs.ids)
    assert set(fs.attrs["skipped"]) == {"img0003.jpg", "img0007.jpg"}


def test_non_finite_embeddings_are_reported_with_ids(kaggle_data, tmp_path, monkeypatch):
    img_dir, csv_path = kaggle_data
    from cactus_features.extract import pipeline

    real = pipeline.embed_chunk

    def poisoned(b, imgs, *args, **kw):
        out = real(b, imgs, *args, **kw)
        out[2, 0] = np.nan
        return out

    monkeypatch.setattr(pipeline, "embed_chunk", poisoned)
    with pytest.raises(DataError, match=r"not finite.*img0002\.jpg"):
        extract_features(
            img_dir, "resnet18@32", labels=csv_path, weights="none", cache_dir=tmp_path, quiet=True
        )


def test_load_features_refuses_newer_and_foreign_files(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    (fs,) = extract_features(
        img_dir, "resnet18@32", labels=csv_path, weights="none", cache_dir=tmp_path, quiet=True
    )
    with h5py.File(fs.path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CacheError, match="newer than this library"):
        load_features(fs.path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1]
    with pytest.raises(CacheError, match="not a cactus-features cache file"):
        load_features(other)
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(CacheError, match="not a readable HDF5 file"):
        load_features(tmp_path / "junk.h5")


@pytest.mark.parametrize(
    ("err", "match"), [(errno.EROFS, "not writable"), (errno.ENOSPC, "disk full")]
)
def test_read_only_or_full_cache_folder_is_a_clear_error(
    kaggle_data, tmp_path, monkeypatch, err, match
):
    img_dir, csv_path = kaggle_data
    kw = dict(labels=csv_path, weights="none", cache_dir=tmp_path / "c", quiet=True)
    (done,) = extract_features(img_dir, "resnet18@32", **kw)
    before = done.path.read_bytes()
    from cactus_features.extract import cache

    def failing_save(self, index, embeddings):
        raise CacheError(cache.io_message(self.folder, OSError(err, os.strerror(err))))

    monkeypatch.setattr(cache.PartStore, "save", failing_save)
    with pytest.raises(CacheError, match=match):
        extract_features(img_dir, "resnet18@40", **kw)
    assert done.path.read_bytes() == before
    assert not list((tmp_path / "c").rglob("*40px*.h5"))
