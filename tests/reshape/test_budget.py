import pytest

from dwr import DwrError, get_spec
from dwr.reshape import metric_value, naive_reshape, resolve_budget, scale_to_budget


@pytest.mark.parametrize("metric", ["bops", "ops"])
@pytest.mark.parametrize("name", ["resnet20_cifar", "vgg_small_cifar", "resnet18_cifar"])
def test_scale_to_budget_lands_within_3_percent(name, metric):
    original = get_spec(name)
    budget = metric_value(original, metric)
    naive = naive_reshape(original, 2)
    # start far from the budget so the bisection has work to do
    start = naive.replace(widths=tuple(w * 3 for w in naive.widths))
    scaled = scale_to_budget(start, budget, metric)
    assert abs(metric_value(scaled, metric) / budget - 1) <= 0.03
    assert scaled.depths == naive.depths and scaled.stem_width == original.stem_width
    # uniform scaling keeps width ratios (up to rounding)
    r = [w / w0 for w, w0 in zip(scaled.widths, start.widths, strict=True)]
    assert max(r) - min(r) < 0.05


def test_scale_to_budget_grows_too():
    spec = get_spec("resnet20_cifar")
    budget = 4 * metric_value(spec, "bops")
    scaled = scale_to_budget(spec, budget, "bops")
    assert scaled.widths[0] > spec.widths[0]
    assert abs(metric_value(scaled, "bops") / budget - 1) <= 0.03


def test_scale_to_budget_unreachable():
    with pytest.raises(DwrError, match="within 3%"):
        scale_to_budget(get_spec("resnet20_cifar"), 10.0, "bops")


def test_resolve_budget():
    spec = get_spec("resnet20_cifar")
    assert resolve_budget("original", "bops", spec) == metric_value(spec, "bops")
    assert resolve_budget(None, "ops", spec) == metric_value(spec, "ops")
    assert resolve_budget("1.5e6", "bops", spec) == 1.5e6
    for bad in ("-3", "lots", "0"):
        with pytest.raises(DwrError, match="budget"):
            resolve_budget(bad, "bops", spec)
    with pytest.raises(DwrError, match="unknown budget metric"):
        resolve_budget("original", "flops", spec)
