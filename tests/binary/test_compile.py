"""``torch.compile`` (``--compile``) traces every registered binarizer, forward and backward,
as one graph, with the eager layer's outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from dwr.binary import BinaryConv2d
from dwr.binary.binarizers import _REGISTRY, INPUT_BINARIZERS, WEIGHT_BINARIZERS


@pytest.mark.parametrize("name", sorted(_REGISTRY))
def test_every_registered_binarizer_compiles_as_one_graph(name):
    torch.manual_seed(0)
    inputs = name if name in INPUT_BINARIZERS else "approx_sign"
    weights = name if name in WEIGHT_BINARIZERS else "scaled_sign"
    conv = BinaryConv2d(4, 6, 3, padding=1, input_binarizer=inputs, weight_binarizer=weights)
    x = torch.randn(2, 4, 5, 5) * 0.7
    torch._dynamo.reset()
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=True, dynamic=False)
    results = []
    for fn in (conv, compiled):
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = fn(xi)
        out.square().sum().backward()
        results.append((out.detach(), xi.grad, conv.weight.grad.clone()))
    for eager, traced in zip(*results, strict=True):
        torch.testing.assert_close(traced, eager)
