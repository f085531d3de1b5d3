"""The unit list: one description per family that the builder and output sizes read."""

from __future__ import annotations

import pytest
import torch

import dwr
from dwr.backbones.blocks import BinaryUnit
from dwr.backbones.units import Pool, Unit, family_names, get_family, stage_units
from dwr.cost import count_cost
from dwr.errors import DwrError


@pytest.mark.parametrize("name", dwr.list_models())
def test_modules_follow_the_unit_list(name):
    spec = dwr.get_spec(name)
    model = dwr.create_model(spec)
    for stage, listed in zip(model.stages, stage_units(spec), strict=True):
        assert len(stage) == len(listed)
        for module, unit in zip(stage, listed, strict=True):
            if isinstance(unit, Pool):
                assert isinstance(module, torch.nn.MaxPool2d)
                continue
            assert isinstance(module, BinaryUnit)
            conv = module.conv
            assert (conv.in_channels, conv.out_channels) == (unit.in_channels, unit.out_channels)
            assert (conv.kernel_size[0], conv.stride[0]) == (unit.kernel, unit.stride)
            assert (module.shortcut is None) == (unit.shortcut == "none")


@pytest.mark.parametrize("name", dwr.list_models())
def test_output_size_from_units_matches_the_model(name):
    spec = dwr.get_spec(name, num_classes=3)
    model = dwr.create_model(spec).eval()
    c, h, w = spec.input_size
    h, w = h + 7, w + 5  # odd, non-square sizes exercise the floor/ceil rules
    with torch.no_grad():
        out = model.forward_features(torch.zeros(1, c, h, w))[-1]
    assert tuple(out.shape[2:]) == spec.output_size(h, w)


def test_families_register_themselves():
    assert {"resnet", "vgg", "mobilenet"} <= set(family_names())
    assert get_family("mobilenet").about
    with pytest.raises(DwrError, match="unknown family"):
        get_family("transformer")
    with pytest.raises(DwrError, match="unknown shortcut"):
        Unit(4, 4, 3, 1, "skip")


def test_reactnet_a_reproduces_the_papers_cost():
    """Liu et al. (ECCV 2020) report 4.82e9 BOPs, 0.12e8 FLOPs and 0.87e8 OPs per 224^2 image."""
    totals = count_cost(dwr.create_model("reactnet_a")).totals()
    assert totals["bops"] == pytest.approx(4.82e9, rel=0.02)
    assert totals["flops"] == pytest.approx(0.12e8, rel=0.05)
    assert totals["ops"] == pytest.approx(0.87e8, rel=0.05)


def test_reactnet_a_blocks_are_3x3_then_1x1_with_pooled_and_tiled_shortcuts():
    units = [u for stage in stage_units(dwr.get_spec("reactnet_a")) for u in stage]
    assert len(units) == 2 * 13
    assert [u.kernel for u in units[:4]] == [3, 1, 3, 1]
    assert [u.shortcut for u in units[:4]] == ["identity", "tile", "avgpool", "tile"]
    assert units[2].in_channels == units[2].out_channels == 64 and units[2].stride == 2
