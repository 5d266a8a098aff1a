"""A real multi-class set (scikit-learn's digits) is read, split per class and extracted today."""

from __future__ import annotations

import numpy as np

from cactus_features import extract_features, load_features
from cactus_features.data.readers import read_dataset
from cactus_features.data.split import SplitConfig, split_counts, split_table
from cactus_features.extract.verify import verify_file


def test_digits_are_read_split_per_class_and_extracted(digits_folders, tmp_path):
    table = read_dataset(digits_folders)
    assert len(table) == 1797 and table.task == "multiclass"
    assert table.class_names == [str(d) for d in range(10)]
    split = split_table(table, SplitConfig())
    per_class = np.bincount(table.labels, minlength=10)
    counts = split_counts(split, table.labels)
    for name, share in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        for cls in range(10):
            assert abs(counts[name][cls] - share * per_class[cls]) <= 1

    (fs,) = extract_features(
        digits_folders, "efficientnet_lite0@64", cache_dir=tmp_path / "cache", quiet=True
    )
    assert fs.task == "multiclass" and fs.class_names == table.class_names
    assert fs.embeddings.shape == (1797, 1280)
    np.testing.assert_array_equal(fs.split, split)
    np.testing.assert_array_equal(fs.labels, table.labels)
    assert verify_file(fs.path).ok
    again = load_features(fs.path)
    assert again.key == fs.key and "task" not in fs.key

    # the features separate the ten digits: a plain logistic regression on them
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = fs.embeddings, fs.labels
    train, test = fs.mask("train"), fs.mask("test")
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), y[train])
    accuracy = model.score(scaler.transform(x[test]), y[test])
    print(f"digits efficientnet_lite0@64 test accuracy {accuracy:.3f}")
    assert accuracy > 0.8
