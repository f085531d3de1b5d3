"""The front door: BNNs the project did not write convert and run as PyTorch computes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import random_model, randomize, test_size
from foreign_models import FOREIGN_MODELS, BinaryActivation, FnBinaryConv
from torch import nn

from dwr import list_models
from dwr.engine import convert
from dwr.engine.ops import State
from dwr.errors import DwrError
from sign_ties import assert_engine_matches


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize(FOREIGN_MODELS[name](), seed)


class _Ste(nn.Module):
    """PlainSignNet's ``ste`` as a module, so that a hook sees its pre-sign input."""

    def forward(self, x):
        return x + (torch.sign(x) - x).detach()


def _sign_sites(name: str, model: nn.Module) -> list[nn.Module]:
    """The modules whose input is the pre-sign value of a binary conv (sign_ties)."""
    if name == "plain_sign":
        site = _Ste()
        object.__setattr__(model, "ste", site)  # shadows the static method; same math
        return [site]
    kind = BinaryActivation if name == "authors_style" else FnBinaryConv
    return [m for m in model.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("name", sorted(FOREIGN_MODELS))
def test_foreign_models_convert_and_agree(name):
    model = _model(name)
    x = torch.randn(200, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    engine = convert(model, x[:2])
    flips = assert_engine_matches(model, engine, x, _sign_sites(name, model), rtol=1e-3)
    print(f"{name}: {flips} signs within rounding of 0 decided the other way")
    kinds = [op.kind for op in engine.ops]
    assert kinds.count("binary_conv") >= 3 and kinds[-1] == "head"


def test_binary_units_equal_pytorch_per_unit():
    """Each binary unit's output (BN and shortcut included) is PyTorch's, to float rounding."""
    model = _model("autograd_function")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    engine = convert(model, x[:1])
    seen = {}
    hooks = [
        b.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0], o)))
        for k, b in enumerate(model.blocks)
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    units = [op for op in engine.ops if op.kind == "binary_conv"]
    assert len(units) == len(model.blocks)
    for k, op in enumerate(units):  # each fed PyTorch's own input: no tie can differ
        inp, out = (t.permute(0, 2, 3, 1).numpy() for t in seen[k])
        got = op.run(State(x=np.ascontiguousarray(inp))).x
        np.testing.assert_allclose(got, out, rtol=1e-4, atol=1e-4, err_msg=f"unit {k}")


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


def test_an_example_the_model_cannot_run_is_one_clear_error():
    """The model's own failure on the example (here a 2x2 image pooled below 1 pixel) is one
    DwrError naming the model and the input shape, not PyTorch's error from inside it."""
    with pytest.raises(DwrError, match=r"PlainSignNet fails on the example input of shape "
                       r"\(1, 3, 2, 2\) \(RuntimeError: ") as e:  # fmt: skip
        convert(FOREIGN_MODELS["plain_sign"]().eval(), torch.randn(1, 3, 2, 2))
    assert "\n" not in str(e.value)


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
