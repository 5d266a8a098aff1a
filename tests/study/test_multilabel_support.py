"""Which heads a multi-label study accepts before extraction: the table of
:data:`~cactus_features.heads.prepare.multilabel.MULTILABEL_HEADS`, asked in one place."""

from __future__ import annotations

import pytest

from cactus_features.errors import ConfigError
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.prepare.multilabel import MULTILABEL_HEADS, takes_labels
from cactus_features.study.support import check_heads_support

LABELS = ["cloud", "field", "road"]


def test_the_tuned_linear_head_passes_the_multilabel_check():
    check_heads_support("multilabel", LABELS, [{"head": "linear"}])
    assert takes_labels("linear", "grid")


def test_a_head_outside_the_table_is_refused_in_one_line():
    lbfgs = {"head": "linear", "solver": "lbfgs"}
    with pytest.raises(ConfigError) as caught:
        check_heads_support("multilabel", LABELS, [{"head": "linear"}, {"head": "knn"}, lbfgs])
    text = str(caught.value)
    assert text.startswith(
        "multilabel task (3 labels: cloud, field, road): heads linear (solver lbfgs) take one "
        "label per image only so far (multi-label: linear (solver grid/adam)"
    )
    assert "\n" not in text and "nothing was extracted" in text


@pytest.mark.parametrize(
    "head", [{"head": "mlp"}, {"head": "linear", "preset": "report"}, {"head": "mlp", "epochs": 5}]
)
def test_every_head_follows_the_table(head):
    config = HeadConfig.create(**head)
    if config.solver in MULTILABEL_HEADS.get(config.head, ()):
        check_heads_support("multilabel", LABELS, [head])
    else:
        with pytest.raises(
            ConfigError, match=rf"heads {config.head} \(solver {config.solver}\) take one label"
        ):
            check_heads_support("multilabel", LABELS, [head])
