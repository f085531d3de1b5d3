"""Bit-packed inference engine: compile a trained backbone to XNOR/popcount kernels.

    engine = dwr.engine.convert(model)   # weights packed once, BN folded
    logits = engine(x)                   # NCHW float32 array or tensor
    engine.save("model.dwre"); engine = dwr.engine.load("model.dwre")

Every op runs in C++ (:mod:`dwr.engine._kernels`, one thread pool): the binary convolutions
as popcount GEMMs, and the real-valued stem, shortcuts, pooling and classifier in float. The
kernels come from one table per ISA (``avx512``, ``avx2``, ``portable``), the best this CPU
runs chosen at load; the environment variable ``DWR_ISA`` or :func:`set_isa` picks another.

Loading and running a saved file needs only NumPy and the kernels; PyTorch is imported by
:func:`convert` alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dwr.engine import _kernels
from dwr.engine.compiled import FORMAT_VERSION, CompiledModel, load, set_num_threads
from dwr.engine.preprocess import Preprocess
from dwr.errors import DwrError

if TYPE_CHECKING:
    import torch
    from torch import nn


def convert(
    model: nn.Module,
    example_input: torch.Tensor | None = None,
    *,
    fold_signs: bool = True,
    preprocess: Preprocess | None = None,
    class_names: list[str] | None = None,
    stem_precision: str = "f32",
) -> CompiledModel:
    """Compile an eval-mode BNN into a :class:`CompiledModel`, with the image ``preprocess``
    and ``class_names`` to store beside it (both optional).

    ``stem_precision`` is the real-valued stem conv's: ``"f32"`` (exact, the default) or
    ``"bf16"`` (weights rounded to bf16 here, inputs at run time, products summed in f32;
    faster only on CPUs with AVX512_BF16, see docs/engine.md) or ``"int8"`` (per-channel int8
    weights, each image quantized by its own max|x| / 127, exact int32 sums; faster only on
    CPUs with AVX512_VNNI), saved with the engine.

    The model is lowered (:func:`dwr.lowering.lower`) and its ops compiled. A dwr backbone
    lowers from its modules; any other ``nn.Module`` is traced with ``torch.fx`` and run once
    on ``example_input`` (an NCHW tensor), which it then needs. Raises
    :class:`~dwr.errors.DwrError` naming the first module or graph node it cannot compile.
    """
    # the only part of the engine that needs PyTorch
    from dwr.backbones.model import Backbone
    from dwr.engine.compiled import check_finite
    from dwr.engine.compiler import compile_ops
    from dwr.engine.ops import check_stem_precision
    from dwr.lowering import StemConv, lower
    from dwr.lowering.from_module import SUPPORTED_MODULES, UnsupportedModule

    check_stem_precision(stem_precision)
    check_finite(model.state_dict().items(), "the model")  # binarizing would hide a NaN
    if not isinstance(model, Backbone) and example_input is None:
        raise DwrError(
            f"the engine compiles dwr backbones directly, and {type(model).__name__} is not "
            "one: convert(model, example_input) traces it on an example NCHW input"
        )
    try:
        lowered = lower(model, example_input, fold_signs=fold_signs)
    except UnsupportedModule as exc:
        raise DwrError(
            f"the engine cannot compile {exc}; it supports registered dwr backbones "
            f"({SUPPORTED_MODULES})"
        ) from None
    if isinstance(lowered[0], StemConv):  # else CompiledModel says what is wrong
        lowered[0].precision = stem_precision
    ops = compile_ops(lowered)
    return CompiledModel(ops, getattr(model, "spec", None), preprocess, class_names)


def kernel_isa() -> str:
    """The kernel table in use: ``"avx512"``, ``"avx2"``, ``"neon"`` or ``"portable"``."""
    return _kernels.isa()


def supported_isas() -> list[str]:
    """The kernel tables this CPU runs, best first."""
    return list(_kernels.isas())


def set_isa(name: str) -> None:
    """Run the kernels of ``name`` (one of :func:`supported_isas`) from now on."""
    if name not in supported_isas():
        raise DwrError(f"kernel ISA {name!r} is not one this CPU runs: {supported_isas()}")
    _kernels.set_isa(name)


def _check_isa_env() -> None:
    """DWR_ISA, when set, must name a table this CPU runs (the kernels read it at load)."""
    want = os.environ.get("DWR_ISA", "")
    if want and want != _kernels.load_isa():
        known = list(_kernels.known_isas())
        why = "unknown" if want not in known else "not supported by this CPU"
        raise DwrError(f"DWR_ISA={want!r} is {why}; this CPU runs {supported_isas()}")


_check_isa_env()


__all__ = [
    "FORMAT_VERSION",
    "CompiledModel",
    "Preprocess",
    "convert",
    "kernel_isa",
    "load",
    "set_isa",
    "set_num_threads",
    "supported_isas",
]
