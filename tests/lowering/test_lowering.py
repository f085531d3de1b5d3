"""The lowered op list: one form from a spec, a backbone's modules or a traced graph."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from dwr.backbones import create_model, get_spec, list_models
from dwr.errors import DwrError
from dwr.lowering import BinaryConv, MaxPool2, lower
from dwr.lowering.rules import mark_packing
from no_torch import no_torch_env


def _small(name: str):
    """The registered spec at an eighth of its widths (the adapter needs widths[0] <= 2C)."""
    spec = get_spec(name)
    widths = [max(8, w // 8) for w in spec.widths]
    if spec.stem_adapter:
        widths[0] = min(widths[0], 2 * spec.stem_width)
    return spec.replace(widths=tuple(widths))


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


GEOMETRY = ("kind", "in_channels", "out_channels", "in_hw", "out_hw")
UNIT = ("k", "stride", "pad", "shortcut", "sc_stride", "shifted", "act", "output", "pack_next")


def _shape(op) -> tuple:
    keys = GEOMETRY + (UNIT if isinstance(op, BinaryConv) else ())
    return tuple(getattr(op, k) for k in keys)


@pytest.mark.parametrize("name", list_models())
def test_spec_lowering_follows_the_spec(name):
    spec = get_spec(name)
    ops = lower(spec)
    assert ops[0].kind == "stem" and ops[-1].kind == "head"
    assert ops[-1].in_hw == spec.output_size(*spec.input_size[1:])
    assert ops[-1].in_channels == spec.widths[-1] and ops[-1].out_channels == spec.num_classes
    for a, b in zip(ops, ops[1:], strict=False):  # a chain: each op reads what the last made
        assert (b.in_channels, b.in_hw) == (a.out_channels, a.out_hw), (a.name, b.name)
    assert not any(op.has_weights for op in ops)


@pytest.mark.parametrize("name", list_models())
def test_a_backbone_lowers_to_its_spec_with_weights(name):
    spec = _small(name)
    from_spec, from_model = lower(spec), lower(create_model(spec).eval())
    assert [op.name for op in from_model] == [op.name for op in from_spec]
    assert [_shape(op) for op in from_model] == [_shape(op) for op in from_spec]
    assert all(op.has_weights for op in from_model if not isinstance(op, MaxPool2))


@pytest.mark.parametrize("name", ["resnet20_cifar", "vgg11_cifar_dwr", "reactnet18"])
def test_the_traced_graph_lowers_like_the_modules(name):
    """Two independent readings of one model, the fx graph's values and the modules, agree
    on every op's geometry, flags and folded weights."""
    model = _randomized(create_model(_small(name)))
    x = torch.randn(2, 3, 32, 32)
    traced, walked = lower(model, x), lower(model)
    assert [_shape(op) for op in traced] == [_shape(op) for op in walked]
    for t, w in zip(traced, walked, strict=True):
        for key in ("w", "b", "weight", "scale", "bias", "shift", "sc_w", "sc_b"):
            got, want = getattr(t, key, None), getattr(w, key, None)
            assert (got is None) == (want is None), (t.name, key)
            if got is not None:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=w.name)


def test_sign_folding_and_packing_rules():
    """VGG units with no shortcut emit bits for the next unit (through a pool, on bits); the
    last unit before the head, and every unit when folding is off, emit floats."""
    spec = get_spec("vgg11_cifar_dwr")
    ops = lower(spec)
    units = [op for op in ops if isinstance(op, BinaryConv)]
    assert [u.output for u in units] == ["bits"] * (len(units) - 1) + ["float"]
    between = [i for i, op in enumerate(ops) if isinstance(op, MaxPool2) and i < len(ops) - 2]
    assert between and all(ops[i].on_bits for i in between)
    assert [u.packed_input for u in units] == [False] + [True] * (len(units) - 1)
    plain = lower(spec, fold_signs=False)
    assert {u.output for u in plain if isinstance(u, BinaryConv)} == {"float"}
    assert not any(u.pack_next for u in plain if isinstance(u, BinaryConv))  # pools between
    resnet = [op for op in lower(get_spec("resnet20_cifar")) if isinstance(op, BinaryConv)]
    assert [u.pack_next for u in resnet] == [True] * (len(resnet) - 1) + [False]
    react = [op for op in lower(get_spec("reactnet18")) if isinstance(op, BinaryConv)]
    assert {u.output for u in react} == {"float"}  # shortcuts and RSign: floats between units
    assert {u.pack_next for u in react[:-1]} == {"shift"}
    mark_packing(react)  # idempotent
    assert {u.pack_next for u in react[:-1]} == {"shift"}


def test_bad_sources_are_one_clear_error():
    with pytest.raises(DwrError, match="give a spec or an nn.Module"):
        lower("resnet20_cifar")
    with pytest.raises(DwrError, match="example NCHW input"):
        lower(torch.nn.Conv2d(3, 8, 3))
    with pytest.raises(DwrError, match="input channels"):
        lower(get_spec("resnet20_cifar"), input_size=(1, 32, 32))
    with pytest.raises(DwrError, match="too small"):
        lower(get_spec("vgg11_cifar_dwr"), input_size=(3, 4, 4))


def test_a_spec_lowers_without_pytorch(tmp_path):
    code = (
        "from dwr.backbones.registry import get_spec\n"
        "from dwr.lowering import lower\n"
        "ops = lower(get_spec('birealnet18'))\n"
        "print(len(ops), ops[-1].in_hw)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=no_torch_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["18", "(7,", "7)"]
