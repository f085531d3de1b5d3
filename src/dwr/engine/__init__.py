"""Bit-packed inference engine: compile a trained backbone to XNOR/popcount kernels.

    engine = dwr.engine.convert(model)   # weights packed once, BN folded
    logits = engine(x)                   # NCHW float32 array or tensor
    engine.save("model.dwre"); engine = dwr.engine.load("model.dwre")

Every op runs in C++ (:mod:`dwr.engine._kernels`, AVX2 chosen at run time, portable
fallback, one thread pool): the binary convolutions as nibble-lookup popcount GEMMs, and the
real-valued stem, shortcuts, pooling and classifier in float.

Loading and running a saved file needs only NumPy and the kernels; PyTorch is imported by
:func:`convert` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dwr.engine import _kernels
from dwr.engine.compiled import FORMAT_VERSION, CompiledModel, load, set_num_threads
from dwr.engine.preprocess import Preprocess

if TYPE_CHECKING:
    from torch import nn


def convert(
    model: nn.Module,
    fold_signs: bool = True,
    preprocess: Preprocess | None = None,
    class_names: list[str] | None = None,
) -> CompiledModel:
    """Compile a dwr backbone (eval-mode semantics) into a :class:`CompiledModel`, with the
    image ``preprocess`` and ``class_names`` to store beside it (both optional).

    Raises :class:`~dwr.errors.DwrError` naming the first module it cannot compile.
    """
    from dwr.engine.plan import build_plan  # the only part of the engine that needs PyTorch

    ops = build_plan(model, fold_signs=fold_signs)
    return CompiledModel(ops, getattr(model, "spec", None), preprocess, class_names)


def kernel_isa() -> str:
    """The popcount kernel in use: ``"avx2"`` or ``"portable"``."""
    return _kernels.isa()


__all__ = [
    "FORMAT_VERSION",
    "CompiledModel",
    "Preprocess",
    "convert",
    "kernel_isa",
    "load",
    "set_num_threads",
]
