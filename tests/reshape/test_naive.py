import math

import pytest

from dwr import DwrError, get_spec, list_models
from dwr.reshape import metric_value, naive_reshape, scale_widths, spec_cost


def test_resnet18_cifar_factor_2_arithmetic():
    spec = get_spec("resnet18_cifar")
    new = naive_reshape(spec, 2)
    assert new.depths == (1, 1, 1, 1)
    assert new.widths == (91, 181, 362, 724)
    assert new.stem_width == spec.stem_width and new.strides == spec.strides
    bops = metric_value(new, "bops") / metric_value(spec, "bops")
    # every stage's first conv reads the narrower previous stage, so BOPs drop to
    # (1*sqrt2 + 2) / 4 = 0.854 of stage 0 and 3/3.5 = 0.857 of the others: 0.858 overall
    assert bops == pytest.approx(0.8584, abs=0.002)
    act = spec_cost(spec).activations / spec_cost(new).activations
    assert act == pytest.approx(math.sqrt(2), abs=0.01)


def test_factor_3_and_halves_round_up():
    new = naive_reshape(get_spec("resnet18_cifar"), 3)
    assert new.depths == (1, 1, 1, 1)
    assert new.widths == (111, 222, 443, 887)  # 64*sqrt3 = 110.85 ...
    # resnet20: depth 3 / 2 = 1.5 -> 2 (halves up; Python's round would give 2 by luck)
    assert naive_reshape(get_spec("resnet20_cifar"), 2).depths == (2, 2, 2)
    # factor 0.25: widths * 0.5, 5 -> 2.5 -> 3 (Python's round gives 2); depth 3 -> 12
    spec = get_spec("resnet20_cifar", widths=[5, 7, 9])
    new = naive_reshape(spec, 0.25)
    assert new.widths == (3, 4, 5) and new.depths == (12, 12, 12)


def test_vgg_stages_are_runs_between_poolings():
    spec = get_spec("vgg_small_cifar")
    new = naive_reshape(spec, 2)
    assert new.depths == (1, 1, 1)  # 1/2 = 0.5 rounds up to 1, 2/2 = 1
    assert new.widths == (181, 362, 724)
    assert new.strides == spec.strides and new.stem_width == 128
    v11 = naive_reshape(get_spec("vgg11_cifar"), 2)
    ref = get_spec("vgg11_cifar_dwr")  # the registry's VGG-11 naive reshape
    assert (v11.depths, v11.widths) == (ref.depths, ref.widths)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_backbone_reshapes(name):
    spec = get_spec(name)
    new = naive_reshape(spec, 2)
    assert all(
        d == max(1, math.floor(d0 / 2 + 0.5)) for d, d0 in zip(new.depths, spec.depths, strict=True)
    )
    assert len(new.widths) == len(spec.widths)


@pytest.mark.parametrize("factor", [0, -1, float("nan")])
def test_bad_factor(factor):
    with pytest.raises(DwrError, match="factor"):
        naive_reshape(get_spec("resnet20_cifar"), factor)


def test_absurd_factor_names_it():
    with pytest.raises(DwrError, match="factor 1e\\+06 is absurd"):
        naive_reshape(get_spec("resnet18_cifar"), 1e6)


def test_scale_widths():
    spec = get_spec("resnet20_cifar")
    wide = scale_widths(spec, 1.5)
    assert wide.widths == (24, 48, 96) and wide.depths == spec.depths
    assert wide.stem_width == spec.stem_width
