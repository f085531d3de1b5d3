"""Whole-model agreement: the engine against PyTorch eval mode on every registered family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_helpers import random_model, test_size

import dwr.engine as engine
from dwr.backbones import list_models
from dwr.engine.ops import BinaryConv, State
from sign_ties import assert_engine_matches, engine_signs

# Images per model: a few hundred in all, more where the model is cheap.
IMAGES = {"resnet20_cifar": 160, "resnet20_cifar_dwr": 160, "vgg11_cifar_dwr": 96}


def _compare(model, images: int, batch: int = 32, **convert_kw) -> int:
    """Asserts the engine's logits are PyTorch's on ``images`` random images; returns the
    number of ties (signs within rounding of 0) that the two decided differently."""
    comp = engine.convert(model, **convert_kw)
    side = test_size(model)
    g = torch.Generator().manual_seed(1)
    flips = 0
    for start in range(0, images, batch):
        x = torch.randn(min(batch, images - start), 3, side, side, generator=g)
        flips += assert_engine_matches(model, comp, x)
    return flips


def test_engine_agrees_with_pytorch_on_every_family():
    """Every registered model: the logits equal PyTorch's to float rounding, on any CPU.

    Each unit alone is exact (test_each_unit_matches_pytorch); a whole model can differ only
    by a sign taken within float rounding of 0 (a tie: the engine folds BN and sums integers,
    PyTorch rounds its own float conv and BN), which assert_engine_matches settles."""
    report = []
    for name in list_models():
        flips = _compare(random_model(name), IMAGES.get(name, 32))
        report.append(f"{name}: {flips} ties decided the other way")
    print("\n".join(report))


@pytest.mark.parametrize("name", ["birealnet18_dwr", "reactnet18", "resnet20_cifar", "vgg11_cifar"])
def test_each_unit_matches_pytorch(name):
    """Fed PyTorch's own input, every binary unit reproduces PyTorch's output to float rounding
    (no ties possible: both binarize the very same float values)."""
    model = random_model(name, seed=2)
    comp = engine.convert(model, fold_signs=False)
    units = {op.name: op for op in comp.ops if isinstance(op, BinaryConv)}
    seen = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: seen.__setitem__(n, (i[0].detach(), o.detach()))
        )
        for n in units
    ]
    with torch.no_grad():
        model(torch.randn(4, 3, test_size(model), test_size(model)))
    for h in hooks:
        h.remove()
    assert set(seen) == set(units)
    for n, op in units.items():
        x, y = seen[n]
        st = op.run(State(x=np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())))
        got = torch.from_numpy(st.x).permute(0, 3, 1, 2)
        torch.testing.assert_close(got, y, rtol=1e-4, atol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


def test_sign_folding_changes_nothing():
    """VGG units emit bits through integer thresholds; the float path must agree with them."""
    model = random_model("vgg_small_cifar_dwr", seed=3)
    folded = engine.convert(model)
    plain = engine.convert(model, fold_signs=False)
    assert any(op.out == "bits" for op in folded.ops if isinstance(op, BinaryConv))
    assert all(op.out == "float" for op in plain.ops if isinstance(op, BinaryConv))
    x = torch.randn(16, 3, 32, 32)
    # both equal PyTorch, ties aside (an integer threshold and a float epilogue may round a
    # value within rounding of 0 differently, so they are checked against PyTorch, not each
    # other)
    assert_engine_matches(model, folded, x)
    assert_engine_matches(model, plain, x)


@pytest.mark.parametrize("name", ["birealnet18", "reactnet18"])
def test_packing_in_the_epilogue_changes_nothing(name):
    """Binary convs that feed binary convs pack the next input in their epilogue (Bi-Real:
    plain signs; ReActNet: signs after the next RSign shift): logits equal unfused runs."""
    model = random_model(name, seed=4)
    comp = engine.convert(model)
    fused = [op for op in comp.ops if isinstance(op, BinaryConv) and op._pack_next]
    assert len(fused) >= 10
    x = torch.randn(2, 3, 64, 64)
    a = comp(x)
    for op in fused:
        op._pack_next = False
    torch.testing.assert_close(comp(x), a, rtol=0, atol=0)


def test_numpy_in_numpy_out_and_batch_independence():
    model = random_model("resnet20_cifar")
    comp = engine.convert(model)
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32)
    out = comp(x)
    assert isinstance(out, np.ndarray) and out.shape == (5, 10)
    one = np.concatenate([comp(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(out, one, rtol=1e-5, atol=1e-5)


def test_threads_do_not_change_results():
    model = random_model("birealnet18_dwr")
    comp = engine.convert(model)
    x = torch.randn(2, 3, 64, 64)
    engine.set_num_threads(1)
    a = comp(x)
    engine.set_num_threads(2)
    b = comp(x)
    engine.set_num_threads(1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_non_square_input_and_odd_sizes():
    model = random_model("reactnet18")
    comp = engine.convert(model)
    x = torch.randn(3, 3, 45, 70)
    assert_engine_matches(model, comp, x)
    np.testing.assert_array_equal(comp(x).numpy(), engine_signs(comp, x.numpy())[0])
