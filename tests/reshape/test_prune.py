import importlib

import pytest
import torch

from dwr import DwrError, build, get_spec
from dwr.reshape import (
    check_reshaped,
    metric_value,
    naive_reshape,
    prune,
    scale_widths,
    stage_features,
)

prune_module = importlib.import_module("dwr.reshape.prune")


def tiny():
    original = get_spec("resnet20_cifar", widths=[8, 16, 32])
    over = scale_widths(naive_reshape(original, 2), 1.5)
    return original, over


def test_stage_features_shapes_and_mean():
    _, over = tiny()
    model = build(over)
    x = torch.randn(10, 3, 32, 32)
    shapes = [tuple(f.shape) for f in stage_features(model, x, batch_size=3)]
    feats = stage_features(model, x, batch_size=10)  # same batches: bit-exact binarization
    assert shapes == [tuple(f.shape) for f in feats]
    assert model.training  # left in the mode it was in
    assert [tuple(f.shape) for f in feats] == [(17, 1024), (35, 256), (68, 64)]
    model.eval()
    with torch.no_grad():
        ref = model.forward_features(x)
    for f, r in zip(feats, ref, strict=True):
        assert torch.allclose(f, r.double().mean(0).flatten(1), atol=1e-5)


def test_prune_meets_budget_and_only_shrinks():
    original, over = tiny()
    model = build(over)
    budget = metric_value(original, "bops")
    result = prune(model, torch.randn(32, 3, 32, 32), budget, "bops")
    assert abs(result.cost["bops"] / budget - 1) <= 0.03
    assert result.spec.depths == over.depths and result.spec.stem_width == over.stem_width
    assert all(w <= w0 for w, w0 in zip(result.spec.widths, over.widths, strict=True))
    assert result.from_widths == list(over.widths)
    d = result.to_dict()
    assert d["budget_metric"] == "bops" and d["widths"] == list(result.spec.widths)


def test_prune_scales_when_a_step_jumps_over_the_window(monkeypatch):
    # stage 2's 68 channels are two tight groups: its width jumps 68 -> 2 at one eps, so no
    # eps lands within 3% and the over-budget clustering widths are scaled down uniformly
    original, over = tiny()
    g = torch.Generator().manual_seed(0)

    def fake(model, images, batch_size=64, tensor="stage"):
        a = torch.randn(17, 8, generator=g)
        b = torch.randn(35, 8, generator=g)
        # 10 e_g + e_(2+j): every pair inside a group at the same cosine distance 1/101
        c = torch.zeros(68, 70)
        c[torch.arange(68), torch.arange(68) % 2] = 10.0
        c[torch.arange(68), 2 + torch.arange(68)] = 1.0
        return [a, b, c]

    monkeypatch.setattr(prune_module, "stage_features", fake)
    budget = metric_value(over, "bops") * 0.8
    result = prune(build(over), torch.randn(8, 3, 32, 32), budget, "bops")
    assert result.width_scale < 1.0
    assert abs(result.cost["bops"] / budget - 1) <= 0.03
    assert result.raw_widths[2] == 68 and result.spec.widths[2] < 68
    assert metric_value(over.replace(widths=tuple(result.raw_widths)), "bops") >= budget


def test_prune_bad_input():
    original, over = tiny()
    model = build(over)
    with pytest.raises(DwrError, match="at least 8 sample images"):
        prune(model, torch.randn(3, 3, 32, 32), 1e6)
    narrow = build(naive_reshape(original, 2).replace(widths=(2, 2, 2)))
    with pytest.raises(DwrError, match="too narrow"):
        prune(narrow, torch.randn(16, 3, 32, 32), metric_value(original, "bops"))


def test_check_reshaped():
    original, over = tiny()
    check_reshaped(over, get_spec("resnet20_cifar"))
    with pytest.raises(DwrError, match="not a reshaped resnet18_cifar"):
        check_reshaped(over, get_spec("resnet18_cifar"))
    with pytest.raises(DwrError, match="family"):
        check_reshaped(get_spec("vgg_small_cifar"), get_spec("resnet20_cifar"))


def test_conv_features_are_the_last_binary_conv_before_bn():
    _, over = tiny()
    model = build(over).eval()
    x = torch.randn(6, 3, 32, 32)
    seen = []
    hooks = [s[-1].conv.register_forward_hook(lambda m, i, o: seen.append(o)) for s in model.stages]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    feats = stage_features(model, x, batch_size=6, tensor="conv")
    for f, o in zip(feats, seen, strict=True):
        assert torch.allclose(f, o.double().mean(0).flatten(1), atol=1e-5)
    with pytest.raises(DwrError, match="unknown feature tensor"):
        stage_features(model, x, tensor="bn")


@pytest.mark.parametrize("tensor,min_samples", [("stage", 2), ("conv", 5)])
def test_fixed_eps_widths_are_scaled_to_the_budget(tensor, min_samples):
    original, over = tiny()
    model = build(over)
    budget = metric_value(original, "bops")
    x = torch.randn(32, 3, 32, 32)
    result = prune(model, x, budget, "bops", eps=0.05, min_samples=min_samples, tensor=tensor)
    assert abs(result.cost["bops"] / budget - 1) <= 0.03
    raw = over.replace(widths=tuple(result.raw_widths))
    assert result.eps == 0.05 and result.bracket == []
    # one factor for every stage: the widths keep the clustering's proportions (to rounding)
    k = result.width_scale
    assert all(
        abs(w - r * k) <= 0.5 + 1e-9 for w, r in zip(result.spec.widths, raw.widths, strict=True)
    )
    assert result.spec.name.endswith("_pruned")


def test_bad_clustering_knobs():
    original, over = tiny()
    model, x = build(over), torch.randn(8, 3, 32, 32)
    budget = metric_value(original, "bops")
    with pytest.raises(DwrError, match="eps must be in"):
        prune(model, x, budget, eps=0.0)
    with pytest.raises(DwrError, match="min_samples must be"):
        prune(model, x, budget, min_samples=0)
