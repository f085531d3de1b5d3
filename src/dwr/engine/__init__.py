"""Bit-packed inference engine: compile a trained backbone to XNOR/popcount kernels.

    engine = dwr.engine.convert(model)   # weights packed once, BN folded
    logits = engine(x)                   # NCHW float32 array or tensor
    engine.save("model.dwre"); engine = dwr.engine.load("model.dwre")

Every op runs in C++ (:mod:`dwr.engine._kernels`, AVX2 chosen at run time, portable
fallback, one thread pool): the binary convolutions as nibble-lookup popcount GEMMs, and the
real-valued stem, shortcuts, pooling and classifier in float.
"""

from __future__ import annotations

from torch import nn

from dwr.engine import _kernels
from dwr.engine.compiled import FORMAT_VERSION, CompiledModel, load, set_num_threads
from dwr.engine.plan import build_plan


def convert(model: nn.Module, fold_signs: bool = True) -> CompiledModel:
    """Compile a dwr backbone (eval-mode semantics) into a :class:`CompiledModel`.

    Raises :class:`~dwr.errors.DwrError` naming the first module it cannot compile.
    """
    return CompiledModel(build_plan(model, fold_signs=fold_signs), getattr(model, "spec", None))


def kernel_isa() -> str:
    """The popcount kernel in use: ``"avx2"`` or ``"portable"``."""
    return _kernels.isa()


__all__ = [
    "FORMAT_VERSION",
    "CompiledModel",
    "convert",
    "kernel_isa",
    "load",
    "set_num_threads",
]
