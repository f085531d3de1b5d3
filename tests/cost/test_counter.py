import pytest

import dwr
from dwr.backbones.spec import MAX_WIDTH  # noqa: F401
from dwr.cost import count_cost


def test_birealnet18_matches_literature():
    r = count_cost(dwr.get_spec("birealnet18"))
    assert r.bops == pytest.approx(1.68e9, rel=0.02)
    assert r.flops == pytest.approx(1.38e8, rel=0.02)
    assert r.ops == pytest.approx(1.64e8, rel=0.02)


def test_resnet18_cifar_bops():
    assert count_cost(dwr.get_spec("resnet18_cifar")).bops == pytest.approx(5.47e8, rel=0.01)


def test_by_hand_resnet20():
    # 9 units per stage of 3x3 convs: 32x32x16x16x9 per unit in stage 1, etc.
    r = count_cost(dwr.get_spec("resnet20_cifar"))
    s1 = 6 * 32 * 32 * 16 * 16 * 9
    s2 = 16 * 16 * 16 * 32 * 9 + 5 * 16 * 16 * 32 * 32 * 9
    s3 = 8 * 8 * 32 * 64 * 9 + 5 * 8 * 8 * 64 * 64 * 9
    assert r.bops == s1 + s2 + s3
    stem, fc = 32 * 32 * 3 * 16 * 9, 64 * 10
    assert r.flops == stem + fc  # zero-pad shortcuts cost nothing
    assert r.activations == 6 * 16 * 32 * 32 + 6 * 32 * 16 * 16 + 6 * 64 * 8 * 8
    assert r.ops == r.flops + r.bops / 64


def test_params_and_packed_storage():
    r = count_cost(dwr.get_spec("resnet20_cifar"))
    assert r.binary_params == sum(layer.params for layer in r.layers if layer.kind == "binary")
    assert r.storage_bytes == (r.binary_params + 7) // 8 + 4 * r.real_params
    model = dwr.create_model("resnet20_cifar")
    assert r.params == sum(p.numel() for p in model.parameters())


def test_float_twin_has_no_bops():
    r = count_cost(dwr.get_spec("resnet20_cifar", float=True))
    assert r.bops == 0 and r.activations == 0 and r.flops > 1e7
