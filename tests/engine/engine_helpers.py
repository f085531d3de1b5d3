"""Shared helpers for the engine tests: realistic random weights for eval-mode backbones."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dwr.backbones import create_model
from dwr.binary import LearnableBias
from dwr.engine.ops import FloatConv, State


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics/affine, RSign shifts and RPReLU parameters, as after training.

    BN scales are drawn with both signs (a negative scale flips a folded threshold), biases and
    means are spread so a binary layer's input has both signs in every channel.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                sign = torch.where(torch.rand(n, generator=g) < 0.1, -1.0, 1.0)
                m.weight.copy_(sign * (torch.rand(n, generator=g) * 0.8 + 0.4))
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
            elif isinstance(m, LearnableBias):
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def random_model(name: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return randomize(create_model(name, **overrides), seed)


def test_size(model: nn.Module) -> int:
    """A small input side that still leaves a few pixels after every stride."""
    return 64 if model.spec.stem == "imagenet" else 32


test_size.__test__ = False  # not a test


def run_stem(op: FloatConv, x: np.ndarray, nchw: bool) -> np.ndarray:
    """A stem op on NCHW ``x``, read as the model's NCHW input or given NHWC."""
    state = (
        State(x=x, nchw=True) if nchw else State(x=np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    )
    return op.run(state).x
