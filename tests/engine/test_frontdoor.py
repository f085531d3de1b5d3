"""The front door: BNNs the project did not write convert and run as PyTorch computes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import random_model, randomize, test_size
from foreign_models import FOREIGN_MODELS, BinaryActivation
from torch import nn

from dwr import list_models
from dwr.engine import convert
from dwr.errors import DwrError


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize(FOREIGN_MODELS[name](), seed)


@pytest.mark.parametrize("name", sorted(FOREIGN_MODELS))
def test_foreign_models_convert_and_agree(name):
    model = _model(name)
    x = torch.randn(200, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    engine = convert(model, x[:2])
    with torch.no_grad():
        expected = model(x).numpy()
    got = engine(x.numpy())
    differ = int((got.argmax(1) != expected.argmax(1)).sum())
    close = np.isclose(got, expected, rtol=1e-3, atol=1e-3).all(axis=1)
    print(
        f"{name}: {differ}/200 argmax differ, {int((~close).sum())} rows not close "
        "(a flip means a binary input within rounding of 0)"
    )
    assert differ <= 1  # >= 99.5% agreement
    assert close.mean() >= 0.99
    kinds = [op.kind for op in engine.ops]
    assert kinds.count("binary_conv") >= 3 and kinds[-1] == "head"


def test_binary_units_equal_pytorch_per_unit():
    """Each binary unit's output (BN and shortcut included) is PyTorch's, to float rounding."""
    model = _model("autograd_function")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    engine = convert(model, x[:1])
    outs = {}
    hooks = [
        b.register_forward_hook(lambda m, i, o, k=k: outs.__setitem__(k, o))
        for k, b in enumerate(model.blocks)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    state = engine._input(x.numpy())
    k = 0
    for op in engine.ops[:-1]:
        state = op.run(state)
        if op.kind == "binary_conv" and state.x is not None:
            np.testing.assert_allclose(
                state.x, outs[k].permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4
            )
            k += 1
    assert k == len(model.blocks)


class _Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = BinaryActivation()
        self.body = nn.Conv2d(8, 8, 3, padding=1)  # a real conv after a sign: not binary
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.body(torch.sigmoid(self.conv(x)))
        return self.fc(x.mean((2, 3)))


def test_unsupported_graph_names_the_node():
    with pytest.raises(DwrError, match=r"node '.*'.*supported:"):
        convert(_Unsupported().eval(), torch.randn(1, 3, 16, 16))


def test_training_mode_and_missing_example_are_refused():
    with pytest.raises(DwrError, match="eval"):
        convert(FOREIGN_MODELS["plain_sign"](), torch.randn(1, 3, 32, 32))
    with pytest.raises(DwrError, match="example_input"):
        convert(FOREIGN_MODELS["plain_sign"]().eval())


@pytest.mark.parametrize("name", list_models())
def test_front_door_compiles_every_registered_model_as_the_plan_does(name):
    """Traced as a plain module (wrapped, so not recognised as a dwr backbone), every registered
    backbone becomes the same op list as its module walk, with the same logits."""
    model = random_model(name)
    size = test_size(model)
    x = torch.randn(
        2, model.spec.in_channels, size, size, generator=torch.Generator().manual_seed(3)
    )
    traced = convert(nn.Sequential(model).eval(), x[:1])
    walked = convert(model)
    assert [op.kind for op in traced.ops] == [op.kind for op in walked.ops]
    assert [getattr(op, "shortcut", None) for op in traced.ops] == [
        getattr(op, "shortcut", None) for op in walked.ops
    ]
    np.testing.assert_allclose(traced(x.numpy()), walked(x.numpy()), rtol=1e-4, atol=1e-4)
