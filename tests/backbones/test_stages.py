"""Pooling an earlier stage, or several: the same numbers as the model's own stages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from cactus_features.backbones.frozen import build_backbone
from cactus_features.backbones.stages import FeatureSelection, select_features, stage_names


def test_selections_parse():
    assert FeatureSelection.parse(None) == FeatureSelection("last", ())
    assert FeatureSelection.parse("stage-2").stages == (-2,)
    assert FeatureSelection.parse("concat3").stages == (-3, -2, -1)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_last_stage_pooled_is_the_default_embedding_and_concat_stacks_stages(name):
    images = torch.randint(0, 256, (4, 48, 48, 3), dtype=torch.uint8)
    kw = dict(weights="none", resolution=64, device="cpu")
    last = build_backbone(name, features="last", **kw)(images)
    stage1 = build_backbone(name, features="stage-1", **kw)(images)
    stage2 = build_backbone(name, features="stage-2", **kw)(images)
    both = build_backbone(name, features="concat2", **kw)(images)
    torch.testing.assert_close(stage1, last, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(both, torch.cat([stage2, stage1], 1), rtol=1e-4, atol=1e-6)
    assert stage2.shape[1] < last.shape[1]


def test_stage_output_equals_the_submodule_pooled():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    cut = select_features(model, FeatureSelection.parse("stage-2"))
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        expected = F.adaptive_avg_pool2d(model.layer3(model.layer2(model.layer1(h))), 1).flatten(1)
        torch.testing.assert_close(cut(x), expected)
    assert stage_names(model) == ["layer1", "layer2", "layer3", "layer4"]


def test_study_configs_pass_the_selection_on():
    from pathlib import Path

    from cactus_features.study.config import load_study

    example = Path(__file__).resolve().parents[2] / "examples" / "cactus_lite_stages.toml"
    selections = [b.features for b in load_study(example).backbones]
    assert selections == ["last", "stage-2", "stage-3", "concat4", "last", "stage-3", "concat4"]
