"""The size estimates read the unit list, so they hold for every registered family."""

import pytest
import torch

import dwr
from dwr.backbones import build
from dwr.limits import approx_params, peak_activation


def _weights(model: torch.nn.Module) -> int:
    """Parameters outside BatchNorm (what ``approx_params`` counts)."""
    return sum(
        p.numel()
        for m in model.modules()
        if not isinstance(m, torch.nn.BatchNorm2d)
        for p in m.parameters(recurse=False)
    )


@pytest.mark.parametrize("name", dwr.list_models())
def test_estimates_match_the_built_network(name):
    spec = dwr.get_spec(name)
    model = build(spec).eval()
    # ReActNet's learnable RSign/RPReLU shifts (one per channel) are the only thing left out
    assert approx_params(spec) == pytest.approx(_weights(model), rel=2e-3)
    outputs: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out[0].numel()))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, *spec.input_size))
    for h in hooks:
        h.remove()
    _, height, width = spec.input_size
    assert peak_activation(spec, height, width) == max(outputs)
