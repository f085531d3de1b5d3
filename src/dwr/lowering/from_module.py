"""Lower a dwr :class:`~dwr.backbones.Backbone`: its spec's ops, with the model's weights.

The structure comes from the spec (:func:`~dwr.lowering.from_spec.lower_spec`); each module
is read for its weights and checked against the op it fills, and anything else raises
:class:`UnsupportedModule` naming the module type and its qualified name. Eval-mode
semantics (BN running statistics), folded in float64:

- BN: ``BN(z) = a * z + b`` with ``a = gamma / sqrt(var + eps)``, ``b = beta - mean * a``;
  a real conv before it takes ``a`` into its weights and ``b`` as its bias.
- Binary unit: ``BN(alpha * dot) = (alpha * a) * dot + b`` (``alpha`` = the weight
  binarizer's mean |W_o| when it scales, else 1); the weights become ``sign(W)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dwr.backbones.blocks import BinaryUnit, Head, Stem, StemAdapter
from dwr.backbones.model import Backbone
from dwr.backbones.units import stage_units
from dwr.binary import BinaryConv2d, RPReLU, RSign
from dwr.binary.binarizers import sign_scale
from dwr.errors import DwrError
from dwr.lowering import ops as lo
from dwr.lowering.from_spec import lower_spec
from dwr.lowering.rules import finish

SUPPORTED_MODULES = "Stem, BinaryUnit, MaxPool2d(2), Head"


class UnsupportedModule(DwrError):
    """A module the lowering cannot express; the engine and the exporter word it their way."""

    def __init__(self, module: nn.Module, where: str, why: str = "") -> None:
        self.module, self.where, self.why = module, where, why
        extra = f" ({why})" if why else ""
        super().__init__(f"{type(module).__name__} at '{where}'{extra}")


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().double().numpy()


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


def _bn(bn: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return fold_bn(bn)
    except DwrError as exc:
        raise UnsupportedModule(bn, where, str(exc)) from None


def _folded(conv: nn.Conv2d, bn: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``BN(conv(x))`` as one conv's ``(w, b)``."""
    a, b = _bn(bn, where)
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    return _np(conv.weight) * a[:, None, None, None], b


def _act(module: nn.Module, want: str, where: str) -> tuple | None:
    """RPReLU's ``(shift in, slope, shift out)``, after checking the module is the spec's
    activation ``want``."""
    found = {nn.Identity: "none", nn.Hardtanh: "hardtanh", RPReLU: "rprelu"}.get(type(module))
    if found != want:
        raise UnsupportedModule(module, where, f"the spec's activation is {want!r}")
    if found == "hardtanh" and (module.min_val != -1.0 or module.max_val != 1.0):
        raise UnsupportedModule(module, where, "Hardtanh other than [-1, 1]")
    if found != "rprelu":
        return None
    slope = _np(module.prelu.weight).reshape(-1)
    n = module.shift_in.bias.numel()
    return (
        _np(module.shift_in.bias).reshape(-1),
        np.full(n, slope[0]) if slope.size == 1 else slope,
        _np(module.shift_out.bias).reshape(-1),
    )


def _check_conv(conv: nn.Module, op, where: str, groups: int = 1, cls=nn.Conv2d) -> None:
    """``conv`` is a zero-padded ``cls`` of ``op``'s channels and geometry."""
    if type(conv) is not cls:
        raise UnsupportedModule(conv, where, f"expected {cls.__name__}")
    want = ((op.k,) * 2, (op.stride,) * 2, (op.pad,) * 2, (1, 1), groups, "zeros")
    got = (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups)
    if (*got, conv.padding_mode) != want:
        raise UnsupportedModule(
            conv,
            where,
            f"does not match its op (kernel, stride, padding) {op.k, op.stride, op.pad}",
        )
    if (conv.in_channels, conv.out_channels) != (op.in_channels, op.out_channels):
        raise UnsupportedModule(
            conv, where, f"does not map {op.in_channels} to {op.out_channels} channels like its op"
        )


def _is_pool(m: nn.Module, geometry: tuple[int, int, int] | None) -> bool:
    if geometry is None:
        return type(m) is nn.Identity

    def one(v) -> int | None:
        return v if isinstance(v, int) else (v[0] if len(set(v)) == 1 else None)

    return (
        type(m) is nn.MaxPool2d
        and (one(m.kernel_size), one(m.stride), one(m.padding)) == geometry
        and one(m.dilation) == 1
        and not m.ceil_mode
        and not m.return_indices
    )


def _stem(stem: nn.Module, op: lo.StemConv) -> None:
    if type(stem) is not Stem:
        raise UnsupportedModule(stem, "stem", "expected dwr Stem")
    _check_conv(stem.conv, op, "stem.conv")
    op.w, op.b = _folded(stem.conv, stem.bn, "stem.bn")
    op.rprelu = _act(stem.act, op.act, "stem.act")
    if not _is_pool(stem.pool, lo.STEM_POOLS[op.pool]):
        raise UnsupportedModule(stem.pool, "stem.pool", f"the spec's stem pool is {op.pool!r}")


def _adapter(adapter: nn.Module, op: lo.StemAdapter) -> None:
    """The stem adapter folded: depthwise 1x1 conv and BN become one per-channel scale and
    shift of the first ``C`` outputs; the rest copy inputs ``o mod C``."""
    if type(adapter) is not StemAdapter or adapter.width != op.out_channels:
        raise UnsupportedModule(adapter, op.name, "expected dwr StemAdapter")
    c, o = op.in_channels, op.out_channels
    geometry = lo.StemConv("", c, c, k=1, stride=1, pad=0)
    _check_conv(adapter.conv, geometry, f"{op.name}.conv", groups=c)
    if type(adapter.act) is not nn.PReLU:
        raise UnsupportedModule(adapter.act, f"{op.name}.act", "expected PReLU")
    dw, b = _folded(adapter.conv, adapter.bn, f"{op.name}.bn")
    first = np.arange(o) < c
    op.src = np.arange(o) % c
    op.scale = np.where(first, np.resize(dw.reshape(-1), o), 1.0)
    op.shift = np.where(first, np.resize(b, o), 0.0)
    slope = _np(adapter.act.weight).reshape(-1)
    op.slope = np.full(o, slope[0]) if slope.size == 1 else slope
    if op.slope.size != o:
        raise UnsupportedModule(adapter.act, f"{op.name}.act", f"PReLU of {slope.size} channels")


def _binarized(conv: BinaryConv2d, where: str) -> tuple[bool, bool, str]:
    """``(binary input, binary weight, weight scale kind)`` from the binarizers' properties
    (never their names): each present one must be a 1-bit sign, the input's unscaled."""
    scales = {}
    for side, fn in (("input", conv.input_binarizer), ("weight", conv.weight_binarizer)):
        if fn is not None:
            try:
                scales[side] = sign_scale(fn, side)
            except DwrError as exc:
                raise UnsupportedModule(conv, where, str(exc)) from None
    return "input" in scales, "weight" in scales, scales.get("weight", "none")


def _unit(module: nn.Module, op: lo.BinaryConv) -> None:
    where = op.name
    if type(module) is not BinaryUnit:
        raise UnsupportedModule(module, where, "the unit list says a binary unit")
    conv = module.conv
    _check_conv(conv, op, f"{where}.conv", cls=BinaryConv2d)
    op.binary_input, op.binary_weight, w_scale = _binarized(conv, f"{where}.conv")
    w = _np(conv.weight)
    a, b = _bn(module.bn, f"{where}.bn")
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    alpha = np.abs(w).mean(axis=(1, 2, 3)) if w_scale == "mean_abs_per_output" else 1.0
    op.weight = np.where(w >= 0, 1.0, -1.0) if op.binary_weight else w
    op.scale, op.bias = alpha * a, b
    if type(module.shift) is RSign:
        op.shift = _np(module.shift.shift.bias).reshape(-1)
    elif type(module.shift) is not nn.Identity:
        raise UnsupportedModule(module.shift, f"{where}.shift", "expected Identity or RSign")
    if (op.shift is not None) != op.shifted:
        raise UnsupportedModule(module.shift, f"{where}.shift", "does not match the spec's method")
    op.rprelu = _act(module.act, op.act, f"{where}.act")
    _shortcut(module.shortcut, op)


def _shortcut(sc: nn.Module | None, op: lo.BinaryConv) -> None:
    """A real 1x1 shortcut's conv and BN (the last two modules of its ``nn.Sequential``)
    folded into ``sc_w``, ``sc_b``; a parameter-free one is checked for presence only."""
    where = f"{op.name}.shortcut"
    if (sc is None) != (op.shortcut == "none"):
        raise UnsupportedModule(sc or nn.Identity(), where, f"the spec says {op.shortcut!r}")
    if op.shortcut not in ("conv", "avgpool_conv"):
        return
    layers = list(sc) if type(sc) is nn.Sequential else []
    conv = layers[-2] if len(layers) >= 2 else None
    shape = (op.out_channels, op.in_channels, 1, 1)
    if type(conv) is not nn.Conv2d or tuple(conv.weight.shape) != shape:
        raise UnsupportedModule(
            sc, where, f"expected the 1x1 conv and BN of a {op.shortcut} shortcut"
        )
    op.sc_w, op.sc_b = _folded(conv, layers[-1], f"{where}.{len(layers) - 1}")


def head_weights(head: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's ``(W, b)`` (float64) of a dwr ``Head`` (global average pool, linear)."""
    if type(head) is not Head:
        raise UnsupportedModule(head, "head", "expected dwr Head")
    if type(head.pool) is not nn.AdaptiveAvgPool2d or head.pool.output_size not in (1, (1, 1)):
        raise UnsupportedModule(head.pool, "head.pool", "expected AdaptiveAvgPool2d(1)")
    if type(head.fc) is not nn.Linear:
        raise UnsupportedModule(head.fc, "head.fc", "expected Linear")
    fc = head.fc
    return _np(fc.weight), _np(fc.bias) if fc.bias is not None else np.zeros(fc.out_features)


def _stages(model: Backbone, ops: list[lo.Op]) -> None:
    """Fill the units between the stem (and adapter) and the head, stage by stage."""
    by_name = {op.name: op for op in ops}
    for i, stage in enumerate(model.stages):
        where = f"stages.{i}"
        names = [n for n in by_name if n.startswith(f"{where}.")]
        if type(stage) is not nn.Sequential or len(stage) != len(names):
            raise UnsupportedModule(
                stage, where, f"a stage must be an nn.Sequential of {len(names)}"
            )
        for j, m in enumerate(stage):
            op = by_name[f"{where}.{j}"]
            if isinstance(op, lo.BinaryConv):
                _unit(m, op)
            elif not _is_pool(m, (2, 2, 0)):
                raise UnsupportedModule(m, op.name, "the unit list says a 2x2 max-pool")


def lower_backbone(
    model: nn.Module, input_size: tuple[int, int, int] | None = None, fold_signs: bool = True
) -> list[lo.Op]:
    """The lowered ops of a dwr backbone, weights attached; raises :class:`UnsupportedModule`
    at the first module that does not match its spec."""
    if not isinstance(model, Backbone):
        raise DwrError(f"expected a dwr backbone (dwr.create_model); got {type(model).__name__}")
    spec = model.spec
    ops = lower_spec(spec, input_size, fold_signs=False)
    stages = len(stage_units(spec))
    if len(model.stages) != stages:
        raise DwrError(f"the model has {len(model.stages)} stages, its spec {stages}")
    _stem(model.stem, ops[0])
    if isinstance(ops[1], lo.StemAdapter):
        _adapter(model.stem.adapter, ops[1])
    elif type(getattr(model.stem, "adapter", nn.Identity())) is not nn.Identity:
        raise UnsupportedModule(model.stem.adapter, "stem.adapter", "the spec has no adapter")
    _stages(model, ops)
    ops[-1].w, ops[-1].b = head_weights(model.head)
    c, h, w = input_size or spec.input_size
    return finish(ops, (h, w), fold_signs)
