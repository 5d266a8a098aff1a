"""The one format check, and the run file read back through its format's reader."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cactus_features.errors import CacheError
from cactus_features.store.format import EMBEDDINGS, RUN, check_version
from cactus_features.store.runs import Predictions, RunFile, load_run, save_run


def _attrs(tmp_path, **attrs):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
    return path


def test_check_version_returns_the_version_and_names_the_file(tmp_path):
    path = _attrs(tmp_path, kind=EMBEDDINGS.kind, format_version=1)
    with h5py.File(path, "r") as f:
        assert check_version(f.attrs, EMBEDDINGS, path=path) == 1
        with pytest.raises(CacheError, match=f"^{path}: not a cactus-features run file$"):
            check_version(f.attrs, RUN, path=path)


@pytest.mark.parametrize(
    ("path_given", "advice", "message"),
    [
        (True, None, "{p}: cache format version 9 is newer than this library's (2); "
         "upgrade cactus-features to read it"),
        (True, "upgrade cactus-features, or use another --cache-dir",
         "{p}: cache format version 9 is newer than this library's (2); "
         "upgrade cactus-features, or use another --cache-dir"),
        (False, None, "format version 9 is newer than this library's (2); "
         "upgrade cactus-features to read it"),
    ],
)  # fmt: skip
def test_newer_format_messages(tmp_path, path_given, advice, message):
    path = _attrs(tmp_path, kind=EMBEDDINGS.kind, format_version=9)
    kw = {"advice": advice} if advice else {}
    with h5py.File(path, "r") as f, pytest.raises(CacheError) as caught:
        check_version(f.attrs, EMBEDDINGS, path=path if path_given else None, **kw)
    assert str(caught.value) == message.format(p=path)


def _run() -> RunFile:
    preds = Predictions(
        ids=np.array(["a", "b"], dtype=object),
        split=np.array([0, 2], np.uint8),
        label=np.array([0, 1]),
        score=np.array([0.2, 0.9]),
    )
    return RunFile(
        None,
        {"head": "linear"},
        {"backbone_name": "x@32"},
        preds,
        history={"val_auc": np.array([0.5, 0.7])},
        head_state={"layer.weight": np.ones((1, 3), np.float32)},
        standardize={"mean": np.zeros(3), "std": np.ones(3)},
    )


def test_run_file_round_trip_and_unversioned_files_read_as_format_one(tmp_path):
    path = save_run(_run(), tmp_path / "r.h5")
    with h5py.File(path, "r") as f:
        assert dict(f.attrs)["kind"] == RUN.kind and f.attrs["format_version"] == 1
    back = load_run(path)
    assert back.name == "x@32" and list(back.predictions.select("test").ids) == ["b"]
    np.testing.assert_array_equal(back.head_state["layer.weight"], np.ones((1, 3)))
    with h5py.File(path, "a") as f:
        del f.attrs["format_version"]
    assert load_run(path).config == {"head": "linear"}


def test_run_file_of_a_newer_format_is_refused(tmp_path):
    path = save_run(_run(), tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 3
    with pytest.raises(CacheError) as caught:
        load_run(path)
    assert str(caught.value) == (
        f"{path}: run format version 3 is newer than this library's (2); upgrade cactus-features"
    )
