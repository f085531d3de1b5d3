"""The engine's stem adapter op against PyTorch (the DWR authors' ``Convalg``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import random_model

import dwr.engine as engine
from dwr.backbones.blocks import StemAdapter
from dwr.engine.compiler import compile_ops
from dwr.engine.ops import ChannelAdapter, State
from dwr.errors import DwrError
from dwr.lowering.from_module import _adapter
from dwr.lowering.ops import StemAdapter as LoweredAdapter
from sign_ties import assert_engine_matches


@pytest.mark.parametrize("width", [5, 8, 13, 16, 21])  # narrower, equal, between, twice, more
def test_adapter_op_matches_pytorch(width):
    torch.manual_seed(width)
    ad = StemAdapter(8, width)
    with torch.no_grad():
        ad.conv.weight.normal_()
        ad.bn.running_mean.normal_(0, 0.3)
        ad.bn.running_var.uniform_(0.25, 1.75)
        ad.bn.weight.uniform_(-1, 1)  # negative scales too
        ad.bn.bias.normal_(0, 0.3)
        ad.act.weight.uniform_(0, 0.5)
    ad.eval()
    x = torch.randn(3, 8, 5, 6)
    with torch.no_grad():
        ref = ad(x)
    lowered = LoweredAdapter("stem.adapter", 8, width)
    _adapter(ad, lowered)
    (op,) = compile_ops([lowered])
    got = op.run(State(x=np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()))).x
    assert got.dtype == np.float32 and got.shape == (3, 5, 6, width)
    torch.testing.assert_close(torch.from_numpy(got).permute(0, 3, 1, 2), ref, rtol=1e-6, atol=1e-6)
    # the copied channels are the input itself before PReLU: exact
    if width > 8:
        np.testing.assert_array_equal(got[..., 8:] >= 0, ref[:, 8:].permute(0, 2, 3, 1) >= 0)


@pytest.mark.parametrize("name", ["birealnet18_dwr", "reactnet18_dwr"])
def test_models_with_an_adapter_agree_and_round_trip(name, tmp_path):
    model = random_model(name, seed=3)
    comp = engine.convert(model)
    assert [op.kind for op in comp.ops[:3]] == ["float_conv", "channel_adapter", "binary_conv"]
    x = torch.randn(4, 3, 64, 64)
    assert_engine_matches(model, comp, x)  # exact, ties within rounding of 0 aside
    got = comp(x)
    comp.save(tmp_path / "m.dwre")
    torch.testing.assert_close(engine.load(tmp_path / "m.dwre")(x), got, rtol=0, atol=0)


def test_bad_adapter_arrays_are_refused():
    ok = dict(in_channels=4, src=[0, 1, 2, 3, 0], scale=[1.0] * 5, shift=[0.0] * 5)
    ChannelAdapter("a", slope=[0.1] * 5, **ok)
    with pytest.raises(DwrError, match="out of range"):
        ChannelAdapter("a", **{**ok, "src": [0, 1, 2, 3, 4]}, slope=[0.1] * 5)
    with pytest.raises(DwrError, match="slope"):
        ChannelAdapter("a", slope=[0.1] * 4, **ok)
