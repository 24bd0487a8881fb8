"""The CNN's stages: plain (VGG-style) and residual (pre-activation ResNet), and the ResNet presets."""

from __future__ import annotations

import pytest
import torch
import yaml

from tests.conftest import ROOT
from zoo.errors import ConfigError
from zoo.models.cnn import CNN, ResidualBlock

CIFAR = {"modality": "image", "task": "classification", "input_shape": [3, 32, 32], "num_classes": 10,
         "input_mean": [0.5] * 3, "input_std": [0.25] * 3}


def preset(name: str) -> dict:
    model = yaml.safe_load((ROOT / "configs" / "model" / f"{name}.yaml").read_text())["model"]
    return {k: v for k, v in model.items() if k != "name"}


@pytest.mark.parametrize("name,params,final", [("resnet20", 0.27e6, (64, 8, 8)), ("resnet18", 11.17e6, (512, 4, 4))])
def test_resnet_presets_have_the_published_size_and_shapes(name, params, final):
    net = CNN(CIFAR, **preset(name))
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - params) / params < 0.01, n  # He et al. 2016: ResNet-20 has 0.27M parameters
    assert net.features(torch.rand(2, 3, 32, 32)).shape[1:] == final
    blocks = [m for m in net.features if isinstance(m, ResidualBlock)]
    assert len(blocks) == len(net.hparams.channels) * net.hparams.blocks_per_stage
    strided = [b for b in blocks if b.shortcut is not None and b.shortcut.stride == (2, 2)]
    assert len(strided) == len(net.hparams.channels) - 1  # each stage after the first halves the size


def test_residual_block_adds_its_input_and_projects_on_a_shape_change():
    same = ResidualBlock(2, 8, 8, kernel_size=3, act="relu", norm="batch", stride=1)
    torch.nn.init.zeros_(same.body[-1].weight)  # last conv silenced: the block is the identity
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(same(x), x)
    down = ResidualBlock(2, 8, 16, kernel_size=3, act="relu", norm="batch", stride=2)
    assert down(x).shape == (2, 16, 3, 3)


def test_plain_stages_pool_once_per_stage_and_residual_works_on_tables():
    net = CNN(CIFAR, channels=[8, 16], blocks_per_stage=2)
    assert len(net.features) == 4 and net.features(torch.rand(1, 3, 32, 32)).shape[-1] == 8
    table = {"modality": "tabular", "task": "regression", "input_shape": [13], "target_dim": 1,
             "input_mean": [0.0] * 13, "input_std": [1.0] * 13, "target_mean": [0.0], "target_std": [1.0]}
    assert CNN(table, channels=[4, 8], block="residual", blocks_per_stage=2)(torch.rand(5, 13)).shape == (5, 1)


def test_residual_options_are_refused_for_tokens_and_unknown_blocks():
    tokens = {"modality": "tokens", "task": "classification", "input_shape": [8], "num_classes": 2, "vocab_size": 20,
              "pad_id": 0}
    with pytest.raises(ConfigError, match="apply to images and tables"):
        CNN(tokens, block="residual")
    with pytest.raises(ConfigError, match="Unknown block 'resnet'"):
        CNN(CIFAR, block="resnet")
