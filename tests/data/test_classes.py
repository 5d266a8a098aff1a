from __future__ import annotations

import numpy as np
import pytest

from cactus_features.data.classes import positive_class_index, sorted_class_names, task_kind
from cactus_features.errors import ConfigError


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["0", "1"], 1),  # the Kaggle CSV: unchanged
        (["1", "0"], 0),
        (["True", "false"], 0),
        (["no", "YES"], 1),
        (["cactus", "no_cactus"], 0),
        (["not-cactus", "cactus"], 1),
        (["Non Cactus", "cactus"], 1),
        (["cat", "dog"], 1),  # no rule applies: the second class
        (["cactus", "no_tree"], 1),  # no_X names another class
        (["1", "yes"], 1),  # two positive words: no rule applies
    ],
)
def test_default_positive_class(names, expected):
    assert positive_class_index(names) == expected


def test_requested_positive_class_wins_and_ignores_case_only_when_unambiguous():
    assert positive_class_index(["cactus", "no_cactus"], "no_cactus") == 1
    assert positive_class_index(["0", "1"], "0") == 0
    assert positive_class_index(["Cat", "dog"], "cat") == 0
    assert positive_class_index(["a", "A"], "A") == 1


def test_positive_class_errors_name_the_value_and_the_choices():
    with pytest.raises(
        ConfigError, match=r"--positive-class 'bird': not a class; choose 'cat' or 'dog'"
    ):
        positive_class_index(["cat", "dog"], "bird")
    with pytest.raises(ConfigError, match="binary task; got 3 classes"):
        positive_class_index(["a", "b", "c"])


def test_task_kind_and_class_order():
    assert task_kind(["0", "1"]) == "binary"
    assert task_kind(list("abc")) == "multiclass"
    assert task_kind(["a", "b"], np.zeros((3, 2), np.uint8)) == "multilabel"
    assert task_kind([]) == "unlabelled"
    assert sorted_class_names(["10", "2", "1"]) == ["1", "2", "10"]
    assert sorted_class_names(["b", "a", "10"]) == ["10", "a", "b"]
    assert sorted_class_names(["nan", "1"]) == ["1", "nan"]
