"""One lowered form of a BNN, read by the engine compiler, the ONNX exporter and the latency
model alike.

    ops = dwr.lowering.lower(spec)                    # shapes and flags: what to price
    ops = dwr.lowering.lower(model)                   # a dwr backbone, weights attached
    ops = dwr.lowering.lower(model, example_input)    # any PyTorch BNN, through torch.fx

An op (:mod:`dwr.lowering.ops`) states its geometry, shortcut kind, activation, whether it
emits sign bits and where its input's signs are packed (:mod:`dwr.lowering.rules`), with
float64 weights (batch norm folded) when it came from a model. Lowering a spec needs no
PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dwr.backbones.spec import BackboneSpec
from dwr.errors import DwrError
from dwr.lowering.from_spec import lower_spec
from dwr.lowering.ops import BinaryConv, Head, MaxPool2, Op, StemAdapter, StemConv

if TYPE_CHECKING:
    import torch


def lower(
    source: Any,
    example_input: torch.Tensor | None = None,
    *,
    input_size: tuple[int, int, int] | None = None,
    fold_signs: bool = True,
) -> list[Op]:
    """The lowered ops of a spec, a dwr backbone, or any eval-mode PyTorch BNN (traced on
    ``example_input``, an NCHW tensor). ``fold_signs`` lets units whose consumer needs only a
    sign emit bits. Raises :class:`DwrError` naming the first thing it cannot lower."""
    if isinstance(source, BackboneSpec):
        return lower_spec(source, input_size, fold_signs)
    from torch import nn

    from dwr.backbones.model import Backbone

    if isinstance(source, Backbone):
        from dwr.lowering.from_module import lower_backbone

        return lower_backbone(source, input_size, fold_signs)
    if not isinstance(source, nn.Module):
        raise DwrError(f"cannot lower a {type(source).__name__}: give a spec or an nn.Module")
    if example_input is None:
        raise DwrError(
            f"{type(source).__name__} is not a dwr backbone: lowering it traces it on an "
            "example NCHW input (example_input)"
        )
    from dwr.lowering.from_graph import lower_graph

    return lower_graph(source, example_input, fold_signs)


__all__ = [
    "BinaryConv",
    "Head",
    "MaxPool2",
    "Op",
    "StemAdapter",
    "StemConv",
    "lower",
    "lower_spec",
]
