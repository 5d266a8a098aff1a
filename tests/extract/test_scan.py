"""The dataset fingerprint: what changes it, and sharded hashing."""

from __future__ import annotations

import pytest

from cactus_features.data.readers import read_dataset
from cactus_features.errors import ConfigError
from cactus_features.extract.scan import dataset_fingerprint, file_digests


@pytest.mark.parametrize("mode", ["content", "size"])
def test_digests_hashed_in_shares_give_the_same_fingerprint(kaggle_data, mode) -> None:
    table = read_dataset(*kaggle_data)
    whole = dataset_fingerprint(table, mode)
    cut = len(table) // 3
    shares = file_digests(table.paths[:cut], mode) + file_digests(table.paths[cut:], mode)
    assert dataset_fingerprint(table, mode, digests=shares) == whole
    with pytest.raises(ValueError):  # a share missing: refused, not silently shorter
        dataset_fingerprint(table, mode, digests=shares[:-1])


def test_an_edited_file_changes_the_content_fingerprint_only(kaggle_data) -> None:
    img_dir, csv_path = kaggle_data
    table = read_dataset(img_dir, csv_path)
    before = {m: dataset_fingerprint(table, m) for m in ("content", "size")}
    path = table.paths[5]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    assert dataset_fingerprint(table, "content") != before["content"]
    assert dataset_fingerprint(table, "size") == before["size"]


def test_unknown_mode_is_refused(kaggle_data) -> None:
    table = read_dataset(*kaggle_data)
    with pytest.raises(ConfigError, match="--fingerprint"):
        dataset_fingerprint(table, "mtime")
