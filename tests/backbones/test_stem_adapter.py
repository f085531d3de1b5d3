"""The DWR authors' stem adapter (``Convalg``): wiring, cost and spec checks."""

from __future__ import annotations

import pytest
import torch

import dwr
from dwr.backbones.blocks import StemAdapter
from dwr.cost import count_cost

# BOPs per 224x224 image of the authors' ImageNet DWR networks (their birealnet.py).
AUTHORS_BOPS = {"birealnet18_dwr": 1.672e9, "reactnet18_dwr": 2.121e9}


@pytest.mark.parametrize("name", sorted(AUTHORS_BOPS))
def test_imagenet_dwr_bops_match_the_authors(name):
    bops = count_cost(dwr.create_model(name)).bops
    assert abs(bops / AUTHORS_BOPS[name] - 1) < 0.01


@pytest.mark.parametrize("name", sorted(AUTHORS_BOPS))
def test_stage_0_starts_width_to_width(name):
    model = dwr.create_model(name)
    width = model.spec.widths[0]
    assert isinstance(model.stem.adapter, StemAdapter)
    first = model.stages[0][0]
    assert first.conv.in_channels == first.conv.out_channels == width
    assert isinstance(first.shortcut, torch.nn.Identity)


def test_adapter_is_scale_and_shift_then_copy_then_prelu():
    torch.manual_seed(0)
    ad = StemAdapter(4, 7).eval()
    with torch.no_grad():
        ad.bn.running_mean.uniform_(-1, 1)
        ad.bn.running_var.uniform_(0.5, 2)
        ad.act.weight.uniform_(0.1, 0.5)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        y = ad(x)
        bn = ad.bn
        a = ad.conv.weight.reshape(-1) * bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
        pre = torch.cat([x * a[:, None, None] + b[:, None, None], x[:, :3]], dim=1)
        want = torch.where(pre >= 0, pre, pre * ad.act.weight[:, None, None])
    torch.testing.assert_close(y, want)


def test_wider_adapters_take_more_copies_and_narrower_ones_slice():
    ad = StemAdapter(3, 8).eval()
    with torch.no_grad():
        ad.act.weight.fill_(1.0)  # PReLU with slope 1: the identity
    x = torch.randn(1, 3, 2, 2)
    with torch.no_grad():
        y = ad(x)
    torch.testing.assert_close(y[:, 3:6], x)
    torch.testing.assert_close(y[:, 6:8], x[:, :2])
    for widths in ([40, 64, 64, 64], [200, 64, 64, 64]):  # narrower than the stem, > 2x
        spec = dwr.get_spec("birealnet18_dwr", widths=widths)
        assert dwr.build(spec)(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_other_models_have_no_adapter():
    for name in ("birealnet18", "reactnet18", "resnet20_cifar_dwr", "resnet18_cifar_dwr"):
        assert not dwr.get_spec(name).stem_adapter
        assert isinstance(dwr.create_model(name).stem.adapter, torch.nn.Identity)
