"""The engine compiler: lowered ops (:mod:`dwr.lowering`) to the engine's runnable ops.

Everything about the model's structure (geometry, shortcut kinds, sign folding, which unit
emits bits) was settled by the lowering; this step only packs weights for the kernels and
turns a bit-output unit's folded BN into integer thresholds:
``scale * dot + bias >= 0  <=>  dot >= ceil(-bias / scale)`` for ``scale > 0``,
``dot <= floor(-bias / scale)`` for ``scale < 0``. Ties (``scale * dot + bias`` within rounding
of 0) may differ from PyTorch, which rounds the float conv and BN first.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from dwr.engine import ops as eo
from dwr.engine.pack import pack_weight
from dwr.errors import DwrError
from dwr.lowering import ops as lo

_INT_MAX = 2**31 - 1


def threshold(scale: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``(thr, flip)`` such that ``scale * dot + bias >= 0`` (exactly, for the given
    float values) holds when ``dot <= thr`` (``flip``) or ``dot >= thr`` (not ``flip``)."""
    thr = np.zeros(len(scale), dtype=np.int64)
    flip = np.zeros(len(scale), dtype=np.uint8)
    for o, (s, b) in enumerate(zip(scale.tolist(), bias.tolist(), strict=True)):
        if not (math.isfinite(s) and math.isfinite(b)):
            raise DwrError(f"non-finite folded batch norm (scale {s}, bias {b})")
        if s == 0:  # constant output: always +1 when bias >= 0, else never
            t = -_INT_MAX if b >= 0 else _INT_MAX
        else:
            r = -Fraction(b) / Fraction(s)
            t = math.floor(r) if s < 0 else math.ceil(r)
            flip[o] = s < 0
        thr[o] = min(max(t, -_INT_MAX), _INT_MAX)
    return thr.astype(np.int32), flip


def _stem(op: lo.StemConv) -> eo.FloatConv:
    return eo.FloatConv(
        op.name,
        w=op.w,
        b=op.b,
        stride=op.stride,
        pad=op.pad,
        act=op.act,
        rprelu=op.rprelu,
        pool=op.pool,
        precision=op.precision,
    )


def _adapter(op: lo.StemAdapter) -> eo.ChannelAdapter:
    return eo.ChannelAdapter(
        op.name,
        in_channels=op.in_channels,
        src=op.src,
        scale=op.scale,
        shift=op.shift,
        slope=op.slope,
    )


def _unit(op: lo.BinaryConv) -> eo.BinaryConv:
    if not (op.binary_input and op.binary_weight):
        raise DwrError(
            f"the engine cannot compile the full-precision convolution at '{op.name}'; it needs "
            "binary input and weights (a spec with binary=True)"
        )
    wbits, wpop = pack_weight(op.weight)
    bits = op.output == "bits"
    thr, flip = threshold(op.scale, op.bias) if bits else (None, None)
    conv_sc = op.shortcut in ("conv", "avgpool_conv")
    return eo.BinaryConv(
        op.name,
        in_channels=op.in_channels,
        out_channels=op.out_channels,
        k=op.k,
        stride=op.stride,
        pad=op.pad,
        wbits=wbits,
        wpop=wpop,
        scale=op.scale,
        bias=op.bias,
        shift=op.shift,
        shortcut=op.shortcut,
        sc_stride=op.sc_stride,
        sc_w=op.sc_w if conv_sc else None,
        sc_b=op.sc_b if conv_sc else None,
        act=op.act,
        rprelu=op.rprelu,
        out=op.output,
        thr=thr,
        flip=flip,
    )


def _compile_one(op: lo.Op) -> eo.Op:
    if not op.has_weights and not isinstance(op, lo.MaxPool2):
        raise DwrError(f"{op.name}: the engine compiles ops with weights (lower a model)")
    if isinstance(op, lo.StemConv):
        return _stem(op)
    if isinstance(op, lo.StemAdapter):
        return _adapter(op)
    if isinstance(op, lo.BinaryConv):
        return _unit(op)
    if isinstance(op, lo.MaxPool2):
        return eo.MaxPool2(op.name, on_bits=op.on_bits)
    if isinstance(op, lo.Head):
        return eo.Head(op.name, w=op.w, b=op.b)
    raise DwrError(f"{op.name}: the engine has no kernel for lowered op {op.kind!r}")


def compile_ops(lowered: list[lo.Op]) -> list[eo.Op]:
    """The engine's ops for a lowered op list with weights attached (the stem at its op's
    ``precision``)."""
    return [_compile_one(op) for op in lowered]
