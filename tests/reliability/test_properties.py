"""Property-based tests: any CSV, label set, split option or damaged image file gives
either a valid result or a :class:`~cactus_features.errors.UserError`, never another
exception."""

from __future__ import annotations

import csv
import io
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cactus_features.data.decode import BadImageError, decode_image
from cactus_features.data.readers import read_dataset
from cactus_features.data.split import SplitConfig, stratified_split
from cactus_features.errors import ConfigError, DataError

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Label text as people type it: digits, words, padding, numeric look-alikes.
label_text = st.one_of(
    st.sampled_from(["0", "1", "2", "10", "-1", "1.0", "nan", "inf", "yes", "no", " 1 ", ""]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=6),
)


def _write_csv(folder: Path, ids: list[str], labels: list[str], header=("id", "has_cactus")):
    path = folder / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(zip(ids, labels, strict=True))
    return path


def _one_line(exc: Exception) -> None:
    text = str(exc)
    assert text and "\n" not in text, repr(text)


@SETTINGS
@given(
    labels=st.lists(label_text, min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    ratios=st.sampled_from([(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.34, 0.33, 0.33)]),
    data=st.data(),
)
def test_any_label_column_gives_a_stable_mapping_and_full_splits_or_a_data_error(
    labels, seed, ratios, data
):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ids = [f"{i}.png" for i in range(len(labels))]
        for name in ids:
            (folder / name).write_bytes(b"")  # the reader never opens the images
        csv_path = _write_csv(folder, ids, labels)
        try:
            table = read_dataset(folder, csv_path)
        except DataError as exc:
            _one_line(exc)
            stripped = {lab.strip() for lab in labels}
            assert "" in stripped or len(stripped) < 2, f"unexpected DataError: {exc}"
            return
        stripped = [lab.strip() for lab in labels]
        # the mapping: sorted distinct labels, each row points at its own label
        assert sorted(set(table.class_names)) == sorted(set(stripped))
        assert len(table.class_names) == len(set(table.class_names)) >= 2
        assert [table.class_names[k] for k in table.labels] == stripped
        # ... and it does not depend on the row order
        order = np.random.default_rng(seed).permutation(len(labels))
        csv2 = _write_csv(folder, [ids[i] for i in order], [labels[i] for i in order])
        assert read_dataset(folder, csv2).class_names == table.class_names
        if all(_is_number(s) for s in table.class_names):
            values = [float(s) for s in table.class_names]
            assert values == sorted(values)
        else:
            assert table.class_names == sorted(table.class_names)
        # the split: every split holds every class, or a one-line DataError
        config = SplitConfig(*ratios, seed=seed)
        try:
            split = stratified_split(table.labels, config, class_names=table.class_names)
        except DataError as exc:
            _one_line(exc)
            sizes = [
                (round(n * ratios[0]), round(n * ratios[1]), n) for n in np.bincount(table.labels)
            ]
            assert any(min(tr, va, n - tr - va) < 1 for tr, va, n in sizes)
            return
        for code in (0, 1, 2):
            assert set(table.labels[split == code]) == set(range(len(table.class_names)))
        assert set(np.unique(split)) == {0, 1, 2}
        again = stratified_split(table.labels, config)
        assert np.array_equal(split, again)
        if data.draw(st.booleans()):  # --classes: a random expected set
            expected = data.draw(st.lists(st.sampled_from(table.class_names), unique=True))
            try:
                read_dataset(folder, csv_path, classes=expected)
            except DataError as exc:
                _one_line(exc)
                assert set(table.class_names) - set(expected)
            else:
                assert set(table.class_names) <= set(expected)


def _is_number(text: str) -> bool:
    try:
        return not math.isnan(float(text))
    except ValueError:
        return False


id_text = st.one_of(
    st.sampled_from(["a.png", "./a.png", "sub/a.png", "../a.png", "/a.png", "a.png ", "", "."]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=0, max_size=12),
)


@SETTINGS
@given(ids=st.lists(id_text, min_size=1, max_size=12), labels=st.lists(label_text, min_size=12))
def test_any_id_column_reads_or_is_a_data_error(ids, labels):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        (root / "sub").mkdir(parents=True)
        for name in ("a.png", "b.png", "sub/a.png"):
            (root / name).write_bytes(b"")
        for name in ids:  # make files for the ids that can be file names
            try:
                target = (root / name.strip()).resolve()
                if name.strip() and target.parent == root.resolve() and not target.exists():
                    target.write_bytes(b"")
            except (OSError, ValueError):
                pass
        csv_path = _write_csv(Path(tmp), ids, labels[: len(ids)])
        try:
            table = read_dataset(root, csv_path)
        except DataError as exc:
            _one_line(exc)
            return
        assert len(table) == len(ids)
        for path in table.paths:  # only files inside the data folder
            assert path.is_file()
            assert root.resolve() in path.resolve().parents


@SETTINGS
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=200).map(lambda b: b"id,has_cactus\n" + b),
        st.binary(max_size=200).map(lambda b: b"\xef\xbb\xbfid,has_cactus\na.png," + b),
    )
)
def test_any_csv_bytes_read_or_are_a_data_error(body):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("a.png", "b.png"):
            (root / name).write_bytes(b"")
        (root / "labels.csv").write_bytes(body)
        try:
            read_dataset(root, root / "labels.csv")
        except DataError as exc:
            _one_line(exc)


@settings(max_examples=200, deadline=None)
@given(
    train=st.floats(allow_nan=True, allow_infinity=True, width=32),
    val=st.floats(-1, 2),
    seed=st.one_of(st.integers(-(2**70), 2**70), st.just(1.5), st.just(True)),
)
def test_any_split_option_is_valid_or_a_config_error(train, val, seed):
    try:
        config = SplitConfig(train, val, 1.0 - train - val if math.isfinite(train) else 0.1, seed)
    except ConfigError as exc:
        _one_line(exc)
        return
    assert config.train > 0 and config.val > 0 and config.test > 0 and config.seed >= 0
    labels = np.repeat([0, 1], 40)
    try:
        split = stratified_split(labels, config)
    except DataError as exc:
        _one_line(exc)
        return
    for code in (0, 1, 2):
        assert set(labels[split == code]) == {0, 1}


# --- damaged image files ----------------------------------------------------------------


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(len(fmt))
    arr = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    image = Image.fromarray(arr)
    if fmt == "GIF":
        image = image.convert("P")
    image.save(buf, fmt)
    return buf.getvalue()


FORMATS = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")}


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about the damage it finds
@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    flips=st.lists(st.tuples(st.floats(0, 0.999), st.integers(0, 255)), max_size=6),
)
def test_damaged_images_decode_or_raise_bad_image_error(fmt, cut, flips):
    data = bytearray(FORMATS[fmt])
    for where, value in flips:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x.{fmt.lower()}"
        path.write_bytes(bytes(data))
        try:
            img = decode_image(path)
        except BadImageError as exc:
            _one_line(exc)
            assert str(path) in str(exc)
            return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


def test_a_header_claiming_billions_of_pixels_is_a_bad_image(tmp_path):
    data = bytearray(FORMATS["BMP"])
    data[18:26] = struct.pack("<ii", 60000, 60000)  # width, height of the DIB header
    path = tmp_path / "bomb.bmp"
    path.write_bytes(bytes(data))
    with pytest.raises(BadImageError, match=r"bomb\.bmp.*DecompressionBombError"):
        decode_image(path)


def test_label_order_is_total_even_with_nan():
    from cactus_features.data.readers import _index_labels

    seen = {tuple(_index_labels(list(p))[0]) for p in (["nan", "1", "2"], ["2", "nan", "1"])}
    assert seen == {("1", "2", "nan")}
    assert _index_labels(["10", "2", "-1"])[0] == ["-1", "2", "10"]
