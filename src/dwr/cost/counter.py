"""Cost of a backbone per image and per layer, by the field's convention.

- BOPs: MACs of layers whose input *and* weights are binary (XNOR + popcount).
- FLOPs: MACs of real-valued convs and linears (stem, downsampling shortcuts, classifier).
- OPs = FLOPs + BOPs / 64 (Bi-Real / ReActNet convention).
- Parameters split into binary and real; storage counts a binary weight as 1 bit, others 32.
- Activations: output elements of the binary layers (the feature maps a BNN must hold).

Counts come from one forward pass with hooks, so they follow the real module graph.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from dwr.backbones.model import Backbone
from dwr.backbones.spec import BackboneSpec


@dataclass
class LayerCost:
    name: str
    kind: str  # "binary" | "real"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int
    params: int
    activations: int

    @property
    def bops(self) -> int:
        return self.macs if self.kind == "binary" else 0

    @property
    def flops(self) -> int:
        return self.macs if self.kind == "real" else 0


@dataclass
class CostReport:
    """Per-layer costs and totals for one image of ``input_size``."""

    input_size: tuple[int, int, int]
    layers: list[LayerCost] = field(default_factory=list)
    other_params: int = 0  # BN, PReLU, biases of shifts: real-valued, outside convs/linears

    @property
    def bops(self) -> int:
        return sum(layer.bops for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def ops(self) -> float:
        return self.flops + self.bops / 64

    @property
    def binary_params(self) -> int:
        return sum(layer.params for layer in self.layers if layer.kind == "binary")

    @property
    def real_params(self) -> int:
        real = sum(layer.params for layer in self.layers if layer.kind == "real")
        return real + self.other_params

    @property
    def params(self) -> int:
        return self.binary_params + self.real_params

    @property
    def storage_bytes(self) -> int:
        """Model size with binary weights packed to 1 bit and real ones in float32."""
        return (self.binary_params + 7) // 8 + 4 * self.real_params

    @property
    def activations(self) -> int:
        return sum(layer.activations for layer in self.layers)

    def totals(self) -> dict[str, Any]:
        return {
            "bops": self.bops,
            "flops": self.flops,
            "ops": self.ops,
            "params": self.params,
            "binary_params": self.binary_params,
            "real_params": self.real_params,
            "storage_bytes": self.storage_bytes,
            "activations": self.activations,
        }

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for layer in self.layers:
            row = asdict(layer)
            row.update(bops=layer.bops, flops=layer.flops)
            rows.append(row)
        return {"input_size": list(self.input_size), **self.totals(), "layers": rows}


def _layer_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def count_cost(
    model: nn.Module | BackboneSpec, input_size: tuple[int, int, int] | None = None
) -> CostReport:
    """Count costs of ``model`` (or of the model a spec builds) for one input image."""
    if isinstance(model, BackboneSpec):
        from dwr.backbones.model import build

        model = build(model)
    if input_size is None:
        if not isinstance(model, Backbone):
            raise ValueError("input_size is required for models that carry no spec")
        input_size = model.spec.input_size
    if isinstance(model, Backbone):
        model.spec.output_size(input_size[1], input_size[2])  # clear error if too small
    report = CostReport(input_size=tuple(input_size))
    hooks = []
    counted: set[int] = set()

    def hook(name: str):
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = inputs[0]
            if isinstance(module, nn.Conv2d):
                k = module.weight[0].numel()  # in/groups * kh * kw
                macs = out[0].numel() * k
            else:
                macs = out[0].numel() * module.in_features
            binary = bool(getattr(module, "is_binary", False))
            report.layers.append(
                LayerCost(
                    name=name,
                    kind="binary" if binary else "real",
                    in_shape=tuple(x.shape[1:]),
                    out_shape=tuple(out.shape[1:]),
                    macs=int(macs),
                    params=_layer_params(module),
                    activations=int(out[0].numel()) if binary else 0,
                )
            )

        return fn

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(hook(name)))
            counted.add(id(module))
    report.other_params = sum(_layer_params(m) for m in model.modules() if id(m) not in counted)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return report
