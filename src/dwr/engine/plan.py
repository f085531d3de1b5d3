"""From a PyTorch :class:`~dwr.backbones.Backbone` to the engine's list of ops.

The walk follows the one outline every backbone has, ``stem -> stages -> head``. What each
stage holds (kernel, stride, shortcut kind) comes from the spec's unit list
(:mod:`dwr.backbones.units`); modules are read for their weights and checked against it, and
anything the engine cannot compile exactly raises :class:`DwrError` naming the module type and
its qualified name. Eval-mode semantics are used (BN running statistics).

Folding (float64, then float32):
- BN: ``BN(z) = a * z + b`` with ``a = gamma / sqrt(var + eps)``, ``b = beta - mean * a``.
- Binary unit: ``BN(alpha * dot) = (alpha * a) * dot + b`` (``alpha`` = scaled_sign's
  mean |W_o|, 1 for a plain sign).
- Sign of the next layer (VGG: no shortcut, Hardtanh/identity keep the sign, no RSign):
  ``scale * dot + bias >= 0  <=>  dot >= ceil(-bias / scale)`` for ``scale > 0``,
  ``dot <= floor(-bias / scale)`` for ``scale < 0``; a max-pool between two units becomes an
  AND of negative-bits. Ties (``scale * dot + bias`` within rounding of 0) may differ from
  PyTorch, which rounds the float conv and BN first.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from dwr.backbones.blocks import (
    BinaryUnit,
    Head,
    Stem,
    StemAdapter,
)
from dwr.backbones.model import Backbone
from dwr.backbones.units import Unit, stage_units
from dwr.binary import BinaryConv2d, RPReLU, RSign
from dwr.binary.binarizers import sign_weight_scale
from dwr.engine.ops import BinaryConv, ChannelAdapter, FloatConv, MaxPool2, Op
from dwr.engine.ops import Head as HeadOp
from dwr.engine.pack import pack_weight
from dwr.errors import DwrError

_INT_MAX = 2**31 - 1


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().double().numpy()


def _unsupported(module: nn.Module, where: str, why: str = "") -> DwrError:
    extra = f" ({why})" if why else ""
    return DwrError(
        f"the engine cannot compile {type(module).__name__} at '{where}'{extra}; it supports "
        "registered dwr backbones (Stem, BinaryUnit, MaxPool2d(2), Head)"
    )


def _bn(bn: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return fold_bn(bn)
    except DwrError as exc:
        raise _unsupported(bn, where, str(exc)) from None


def _act(module: nn.Module, where: str) -> tuple[str, tuple | None]:
    if type(module) is nn.Identity:
        return "none", None
    if type(module) is nn.Hardtanh:
        if module.min_val != -1.0 or module.max_val != 1.0:
            raise _unsupported(module, where, "Hardtanh other than [-1, 1]")
        return "hardtanh", None
    if type(module) is RPReLU:
        slope = _np(module.prelu.weight).reshape(-1)
        n = module.shift_in.bias.numel()
        if slope.size == 1:
            slope = np.full(n, slope[0])
        return "rprelu", (
            _np(module.shift_in.bias).reshape(-1),
            slope,
            _np(module.shift_out.bias).reshape(-1),
        )
    raise _unsupported(module, where, "activation must be Identity, Hardtanh or RPReLU")


def _conv_geometry(conv: nn.Conv2d, where: str) -> tuple[int, int, int]:
    """``(k, stride, pad)`` of a square, symmetric, dense, zero-padded convolution."""
    k, s, p, d = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1]:
        raise _unsupported(conv, where, "non-square kernel, stride or padding")
    if d != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros":
        raise _unsupported(conv, where, "dilated, grouped or non-zero padded convolution")
    return k[0], s[0], p[0]


def _stem_op(stem: nn.Module) -> FloatConv:
    if type(stem) is not Stem:
        raise _unsupported(stem, "stem", "expected dwr Stem")
    conv = stem.conv
    if type(conv) is not nn.Conv2d:
        raise _unsupported(conv, "stem.conv", "expected a real-valued Conv2d")
    k, s, p = _conv_geometry(conv, "stem.conv")
    a, b = _bn(stem.bn, "stem.bn")
    w = _np(conv.weight) * a[:, None, None, None]
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    act, rprelu = _act(stem.act, "stem.act")
    pool = stem.pool
    if type(pool) is nn.Identity:
        kind = "none"
    elif _is_pool(pool, 3, 2, 1):
        kind = "max3"
    elif _is_pool(pool, 2, 2, 0):
        kind = "max2"
    else:
        raise _unsupported(pool, "stem.pool", "only MaxPool2d(3, 2, 1) or MaxPool2d(2)")
    return FloatConv("stem", w=w, b=b, stride=s, pad=p, act=act, rprelu=rprelu, pool=kind)


def _adapter_op(adapter: nn.Module) -> ChannelAdapter | None:
    """The stem adapter (``stem_adapter`` specs) folded: depthwise 1x1 conv and BN become one
    per-channel scale and shift of the first ``C`` outputs, the rest copy inputs ``o mod C``."""
    if type(adapter) is nn.Identity:
        return None
    if type(adapter) is not StemAdapter:
        raise _unsupported(adapter, "stem.adapter", "expected dwr StemAdapter")
    conv = adapter.conv
    c = conv.in_channels
    if (
        type(conv) is not nn.Conv2d
        or conv.kernel_size != (1, 1)
        or conv.stride != (1, 1)
        or conv.padding != (0, 0)
        or conv.groups != c
        or conv.out_channels != c
    ):
        raise _unsupported(conv, "stem.adapter.conv", "expected a depthwise 1x1 Conv2d")
    if type(adapter.act) is not nn.PReLU:
        raise _unsupported(adapter.act, "stem.adapter.act", "expected PReLU")
    a, b = _bn(adapter.bn, "stem.adapter.bn")
    dw = _np(conv.weight).reshape(-1) * a
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    o = adapter.width
    src = np.arange(o) % c
    scale = np.where(np.arange(o) < c, np.resize(dw, o), 1.0)
    shift = np.where(np.arange(o) < c, np.resize(b, o), 0.0)
    slope = _np(adapter.act.weight).reshape(-1)
    if slope.size == 1:
        slope = np.full(o, slope[0])
    if slope.size != o:
        raise _unsupported(adapter.act, "stem.adapter.act", f"PReLU of {slope.size} channels")
    return ChannelAdapter(
        "stem.adapter", in_channels=c, src=src, scale=scale, shift=shift, slope=slope
    )


def _is_pool(m: nn.Module, k: int, s: int, p: int) -> bool:
    def one(v) -> int | None:
        if isinstance(v, int):
            return v
        return v[0] if len(set(v)) == 1 else None

    return (
        type(m) is nn.MaxPool2d
        and one(m.kernel_size) == k
        and one(m.stride) == s
        and one(m.padding) == p
        and one(m.dilation) == 1
        and not m.ceil_mode
        and not m.return_indices
    )


def _shortcut(sc: nn.Module | None, unit: Unit, where: str) -> dict:
    """The unit's shortcut: kind and stride from the unit list; a real 1x1 shortcut's conv and
    BN (the last two modules of its ``nn.Sequential``) are folded into ``sc_w``, ``sc_b``."""
    kind = unit.shortcut
    if (sc is None) != (kind == "none"):
        raise _unsupported(sc or nn.Identity(), where, f"the unit list says shortcut {kind!r}")
    if kind in ("none", "identity", "tile"):
        return {"shortcut": kind}
    if kind in ("zero_pad", "avgpool"):
        return {"shortcut": kind, "sc_stride": unit.stride}
    layers = list(sc) if type(sc) is nn.Sequential else []
    conv = layers[-2] if len(layers) >= 2 else None
    shape = (unit.out_channels, unit.in_channels, 1, 1)
    if type(conv) is not nn.Conv2d or tuple(conv.weight.shape) != shape:
        raise _unsupported(sc, where, f"expected the 1x1 conv and BN of a {kind} shortcut")
    a, b = _bn(layers[-1], f"{where}.{len(layers) - 1}")
    w = _np(conv.weight) * a[:, None, None, None]
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    return {"shortcut": kind, "sc_stride": unit.stride, "sc_w": w, "sc_b": b}


def _weight_scale(conv: BinaryConv2d, where: str) -> str:
    """The weight binarizer's scale kind, once both binarizers are checked to be signs the
    kernels can run (read from their properties, never their names)."""
    try:
        return sign_weight_scale(conv.input_binarizer, conv.weight_binarizer)
    except DwrError as exc:
        raise _unsupported(conv, f"{where}.conv", str(exc)) from None


def fold_bn(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with ``BN(z) = a * z + b`` per channel (eval mode, float64); raises
    :class:`DwrError` for anything but a ``BatchNorm2d`` with running statistics."""
    if type(bn) is not nn.BatchNorm2d:
        raise DwrError("expected BatchNorm2d")
    if bn.running_mean is None or bn.running_var is None:
        raise DwrError("batch norm without running statistics")
    n = bn.num_features
    gamma = _np(bn.weight) if bn.weight is not None else np.ones(n)
    beta = _np(bn.bias) if bn.bias is not None else np.zeros(n)
    a = gamma / np.sqrt(_np(bn.running_var) + bn.eps)
    return a, beta - _np(bn.running_mean) * a


def _unit_op(module: nn.Module, unit: Unit, where: str) -> BinaryConv:
    if type(module) is not BinaryUnit:
        raise _unsupported(module, where, "the unit list says a binary unit")
    conv = module.conv
    if type(conv) is not BinaryConv2d:
        raise _unsupported(conv, f"{where}.conv", "expected BinaryConv2d")
    if conv.input_binarizer is None or conv.weight_binarizer is None:
        raise _unsupported(
            conv,
            f"{where}.conv",
            "full-precision convolution; the engine needs binary input "
            "and weights (a spec with binary=True)",
        )
    w_scale = _weight_scale(conv, where)
    if conv.bias is not None:
        raise _unsupported(conv, f"{where}.conv", "binary conv with a bias")
    k, s, p = _conv_geometry(conv, f"{where}.conv")
    listed = (unit.in_channels, unit.out_channels, unit.kernel, unit.stride, unit.padding)
    if (conv.in_channels, conv.out_channels, k, s, p) != listed:
        raise _unsupported(conv, f"{where}.conv", f"does not match its unit {unit}")
    w = _np(conv.weight)
    alpha = np.abs(w).mean(axis=(1, 2, 3)) if w_scale == "mean_abs_per_output" else np.ones(len(w))
    wbits, wpop = pack_weight(w)
    a, b = _bn(module.bn, f"{where}.bn")
    if type(module.shift) is nn.Identity:
        shift = None
    elif type(module.shift) is RSign:
        shift = _np(module.shift.shift.bias).reshape(-1)
    else:
        raise _unsupported(module.shift, f"{where}.shift", "expected Identity or RSign")
    act, rprelu = _act(module.act, f"{where}.act")
    return BinaryConv(
        where,
        in_channels=conv.in_channels,
        out_channels=conv.out_channels,
        k=k,
        stride=s,
        pad=p,
        wbits=wbits,
        wpop=wpop,
        scale=alpha * a,
        bias=b,
        shift=shift,
        act=act,
        rprelu=rprelu,
        **_shortcut(module.shortcut, unit, f"{where}.shortcut"),
    )


def head_weights(head: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's ``(W, b)`` (float64) of a dwr ``Head`` (global average pool, linear);
    raises ``(module, where, why)`` as :class:`UnsupportedModule` for anything else."""
    if type(head) is not Head:
        raise UnsupportedModule(head, "head", "expected dwr Head")
    if type(head.pool) is not nn.AdaptiveAvgPool2d or head.pool.output_size not in (1, (1, 1)):
        raise UnsupportedModule(head.pool, "head.pool", "expected AdaptiveAvgPool2d(1)")
    if type(head.fc) is not nn.Linear:
        raise UnsupportedModule(head.fc, "head.fc", "expected Linear")
    fc = head.fc
    return _np(fc.weight), _np(fc.bias) if fc.bias is not None else np.zeros(fc.out_features)


class UnsupportedModule(Exception):
    """A module a converter cannot take; each converter words its own :class:`DwrError`."""

    def __init__(self, module: nn.Module, where: str, why: str) -> None:
        super().__init__(why)
        self.module, self.where, self.why = module, where, why


def _head_op(head: nn.Module) -> HeadOp:
    try:
        w, b = head_weights(head)
    except UnsupportedModule as exc:
        raise _unsupported(exc.module, exc.where, exc.why) from None
    return HeadOp("head", w=w, b=b)


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


def _fold_signs(ops: list[Op]) -> None:
    """Let a unit emit sign bits when all its consumer needs is the next unit's sign."""
    for i, op in enumerate(ops):
        if not isinstance(op, BinaryConv) or op.shortcut != "none":
            continue
        if op.act not in ("none", "hardtanh"):
            continue
        j = i + 1
        pooled = j < len(ops) and isinstance(ops[j], MaxPool2)
        if pooled:
            j += 1
        nxt = ops[j] if j < len(ops) else None
        if not isinstance(nxt, BinaryConv) or nxt.shift is not None:
            continue
        op.thr, op.flip = threshold(op.scale, op.bias)
        op.out = "bits"
        op.__post_init__()
        if pooled:
            ops[i + 1].on_bits = True


def build_plan(model: nn.Module, fold_signs: bool = True) -> list[Op]:
    """The op list of a backbone; raises :class:`DwrError` at the first unsupported module."""
    if not isinstance(model, Backbone):
        raise DwrError(
            f"the engine compiles dwr backbones (dwr.create_model); got {type(model).__name__}"
        )
    ops: list[Op] = [_stem_op(model.stem)]
    adapter = _adapter_op(getattr(model.stem, "adapter", nn.Identity()))
    if adapter is not None:
        ops.append(adapter)
    listed = stage_units(model.spec)
    if len(listed) != len(model.stages):
        raise DwrError(f"the model has {len(model.stages)} stages, its spec {len(listed)}")
    for i, (stage, units) in enumerate(zip(model.stages, listed, strict=True)):
        where = f"stages.{i}"
        if type(stage) is not nn.Sequential or len(stage) != len(units):
            raise _unsupported(stage, where, f"a stage must be an nn.Sequential of {len(units)}")
        for j, (m, unit) in enumerate(zip(stage, units, strict=True)):
            name = f"{where}.{j}"
            if isinstance(unit, Unit):
                ops.append(_unit_op(m, unit, name))
            elif _is_pool(m, 2, 2, 0):
                ops.append(MaxPool2(name))
            else:
                raise _unsupported(m, name, "the unit list says a 2x2 max-pool")
    ops.append(_head_op(model.head))
    if fold_signs:
        _fold_signs(ops)
    return ops
