"""ONNX export of a dwr backbone with standard operators only (opset >= 17).

The graph is written node by node from the backbone's modules (no tracing), so what it holds
is exactly what the walk checked; any module it does not know raises :class:`DwrError` naming
the module's type and qualified name. Eval-mode semantics (BN running statistics).

- Binarization is ``Sign``. dwr's sign maps 0 to +1 while ONNX's maps it to 0, so by default
  an activation becomes ``Sign(Sign(x) + 0.5)`` (larq's form, exact for every input);
  ``sign="plain"`` emits the single ``Sign`` that BNN toolchains pattern-match, which
  differs only where a binarizer input is exactly 0 (rare in a trained model).
  ``sign="qonnx"`` writes QONNX's ``BipolarQuant`` (domain ``qonnx.custom_op.general``, the
  input format of FINN) for activations and for the float weights; the rest stays standard.
- A binary convolution is ``Conv`` with constant weights ``sign(W)`` (exactly ±1), then one
  per-channel ``Mul`` and ``Add`` holding the weight scale and the BN that follows, folded:
  ``BN(alpha_o * dot) = (alpha_o * a_o) * dot + b_o`` with ``BN(z) = a * z + b`` and
  ``alpha_o = mean |W_o|`` (``scaled_sign``; 1 for ``ste_sign``); float64, then float32. On
  ±1 inputs every dot is an integer, exact in float32, as in the XNOR/popcount engine.
  Real-valued convolutions (stem, shortcuts) carry their BN in their weights and bias.
  Padding happens after the sign, so a padded tap is 0, as in dwr.
- RSign is ``Add``, RPReLU ``Add -> PRelu -> Add``, Hardtanh ``Clip``, the stem adapter
  ``Mul/Add -> Concat -> Slice -> PRelu``, the tiling shortcut ``Concat -> Slice``.

The batch dimension is symbolic (``"batch"``; 1 for QONNX, whose tools want static shapes);
height and width are fixed (the spec's input size or ``size``). onnxruntime's default graph
optimizations fold the Mul and Add back into the conv weights; that rounds a dot that is
exactly 0 to a tiny value, so a fresh model (whose identity BN puts many pre-activations on 0)
matches exactly only with optimizations off.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from dwr.backbones.blocks import BinaryUnit, Stem, ZeroPadShortcut
from dwr.backbones.model import Backbone
from dwr.binary import BinaryConv2d, RPReLU, RSign
from dwr.binary.binarizers import binarizer_properties, describe_binarizer
from dwr.engine.plan import UnsupportedModule, fold_bn, head_weights
from dwr.errors import DwrError

MIN_OPSET = 17
#: Ways to write a binarizer: exact ``Sign(Sign(x) + 0.5)``, one plain ``Sign``, QONNX's
#: ``BipolarQuant`` (``x >= 0 ? 1 : -1``, FINN's input format).
SIGN_MODES = ("exact", "plain", "qonnx")
QONNX_DOMAIN = "qonnx.custom_op.general"
_INT64_MAX = 2**63 - 1


def _require_onnx():
    try:
        import onnx
    except ImportError:
        raise DwrError("ONNX export needs the onnx package: pip install onnx") from None
    return onnx


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _unsupported(module: nn.Module, where: str, why: str) -> DwrError:
    return DwrError(
        f"cannot export {type(module).__name__} at '{where}' to ONNX ({why}); the exporter "
        "supports registered dwr backbones"
    )


class _Graph:
    """Nodes and constants of the graph being built, with unique tensor names."""

    def __init__(self, onnx, sign: str) -> None:
        self.onnx = onnx
        self.sign_mode = sign
        self.nodes: list = []
        self.inits: list = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value, dtype=np.float32) -> str:
        name = self._name(hint)
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self._name(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def channel_const(self, hint: str, v: np.ndarray) -> str:
        """A per-channel vector shaped ``[1, C, 1, 1]`` to broadcast over NCHW."""
        return self.const(hint, np.asarray(v).reshape(1, -1, 1, 1))

    def sign(self, x: str, where: str) -> str:
        """dwr's sign (0 -> +1) of a tensor; ONNX's plain ``Sign`` (0 -> 0) in ``"plain"``."""
        if self.sign_mode == "qonnx":
            one = self.const(f"{where}.unit_scale", 1.0)
            return self.op("BipolarQuant", [x, one], f"{where}.sign", domain=QONNX_DOMAIN)
        s = self.op("Sign", [x], f"{where}.sign")
        if self.sign_mode == "plain":
            return s
        half = self.const(f"{where}.half", 0.5)
        return self.op("Sign", [self.op("Add", [s, half], f"{where}.sign_shift")], f"{where}.sign")

    def conv(self, x: str, w: np.ndarray, b: np.ndarray | None, conv: nn.Conv2d, where: str) -> str:
        k, s, p = _geometry(conv, where)
        inputs = [x, self.const(f"{where}.weight", w)]
        if b is not None:
            inputs.append(self.const(f"{where}.bias", b))
        return self.op(
            "Conv",
            inputs,
            where,
            kernel_shape=[k, k],
            strides=[s, s],
            pads=[p, p, p, p],
            group=conv.groups,
        )


def _geometry(conv: nn.Conv2d, where: str) -> tuple[int, int, int]:
    k, s, p, d = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1]:
        raise _unsupported(conv, where, "non-square kernel, stride or padding")
    if d != (1, 1) or conv.padding_mode != "zeros":
        raise _unsupported(conv, where, "dilated or non-zero padded convolution")
    return k[0], s[0], p[0]


def _bn(bn: nn.Module, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with ``BN(z) = a * z + b`` per channel (the engine's folding)."""
    try:
        return fold_bn(bn)
    except DwrError as exc:
        raise _unsupported(bn, where, str(exc)) from None


def _folded_conv(g: _Graph, x: str, conv: nn.Conv2d, w: np.ndarray, bn: nn.Module, where: str):
    """``BN(conv(x, w))`` as one Conv with the BN folded into its weights and bias."""
    a, b = _bn(bn, f"{where}.bn")
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    return g.conv(x, w * a[:, None, None, None], b, conv, where)


def _prelu(g: _Graph, x: str, prelu: nn.Module, where: str) -> str:
    if type(prelu) is not nn.PReLU:
        raise _unsupported(prelu, where, "expected PReLU")
    slope = _np(prelu.weight).reshape(-1)
    return g.op("PRelu", [x, g.const(f"{where}.slope", slope.reshape(-1, 1, 1))], where)


def _activation(g: _Graph, x: str, act: nn.Module, where: str) -> str:
    if type(act) is nn.Identity:
        return x
    if type(act) is nn.Hardtanh:
        lo, hi = g.const(f"{where}.min", act.min_val), g.const(f"{where}.max", act.max_val)
        return g.op("Clip", [x, lo, hi], where)
    if type(act) is nn.PReLU:
        return _prelu(g, x, act, where)
    if type(act) is RPReLU:
        x = g.op("Add", [x, g.channel_const(f"{where}.gamma", _np(act.shift_in.bias))], where)
        x = _prelu(g, x, act.prelu, f"{where}.prelu")
        return g.op("Add", [x, g.channel_const(f"{where}.zeta", _np(act.shift_out.bias))], where)
    raise _unsupported(act, where, "activation must be Identity, Hardtanh, PReLU or RPReLU")


def _pool_args(m: nn.Module) -> tuple[int, int, int] | None:
    def one(v):
        return v if isinstance(v, int) else (v[0] if len(set(v)) == 1 else None)

    return one(m.kernel_size), one(m.stride), one(m.padding)


def _maxpool(g: _Graph, x: str, pool: nn.Module, where: str) -> str:
    if type(pool) is nn.Identity:
        return x
    if type(pool) is not nn.MaxPool2d or pool.return_indices or pool.dilation not in (1, (1, 1)):
        raise _unsupported(pool, where, "expected MaxPool2d")
    k, s, p = _pool_args(pool)
    if None in (k, s, p):
        raise _unsupported(pool, where, "non-square max-pool")
    return g.op(
        "MaxPool",
        [x],
        where,
        kernel_shape=[k, k],
        strides=[s, s],
        pads=[p, p, p, p],
        ceil_mode=int(pool.ceil_mode),
    )


def _stem_adapter(g: _Graph, x: str, adapter: nn.Module, where: str) -> str:
    """``PReLU(cat(BN(dwconv1x1(x)), x)[:, :width])`` with conv and BN as one Mul + Add."""
    if type(adapter) is nn.Identity:
        return x
    conv, width = getattr(adapter, "conv", None), getattr(adapter, "width", None)
    if type(conv) is not nn.Conv2d or conv.kernel_size != (1, 1) or conv.bias is not None:
        raise _unsupported(adapter, where, "expected the stem adapter (depthwise 1x1 conv, BN)")
    if conv.groups != conv.in_channels or conv.out_channels != conv.in_channels:
        raise _unsupported(adapter, where, "the adapter's conv must be depthwise 1x1")
    a, b = _bn(adapter.bn, f"{where}.bn")
    scale = _np(conv.weight).reshape(-1) * a
    y = g.op("Mul", [x, g.channel_const(f"{where}.scale", scale)], where)
    y = g.op("Add", [y, g.channel_const(f"{where}.shift", b)], where)
    copies = max(1, -(-width // conv.in_channels) - 1)  # wider stages take more copies of x
    y = g.op("Concat", [y] + [x] * copies, where, axis=1)
    y = g.op(
        "Slice",
        [
            y,
            g.const(f"{where}.start", [0], np.int64),
            g.const(f"{where}.end", [width], np.int64),
            g.const(f"{where}.axis", [1], np.int64),
        ],
        where,
    )
    return _prelu(g, y, adapter.act, f"{where}.act")


def _stem(g: _Graph, x: str, stem: nn.Module) -> str:
    if type(stem) is not Stem:
        raise _unsupported(stem, "stem", "expected dwr Stem")
    if type(stem.conv) is not nn.Conv2d or stem.conv.groups != 1:
        raise _unsupported(stem.conv, "stem.conv", "expected a dense real-valued Conv2d")
    x = _folded_conv(g, x, stem.conv, _np(stem.conv.weight), stem.bn, "stem.conv")
    x = _activation(g, x, stem.act, "stem.act")
    x = _maxpool(g, x, stem.pool, "stem.pool")
    return _stem_adapter(g, x, getattr(stem, "adapter", nn.Identity()), "stem.adapter")


def _binary_conv(g: _Graph, x: str, conv: BinaryConv2d, bn: nn.Module, where: str) -> str:
    """``BN(conv(x, alpha_o * sign(W)))`` as ``Conv(x, sign(W)) * (alpha_o * a_o) + b_o``.

    The weights stay exactly ±1, so on ±1 inputs every dot product is an integer, exact in
    float32 (what XNOR/popcount computes); the scales and the BN act after it.
    """
    if conv.weight_binarizer is None:  # real weights (two-step training's first step)
        return _folded_conv(g, x, conv, _np(conv.weight), bn, where)
    w = _np(conv.weight)
    props = binarizer_properties(conv.weight_binarizer)  # properties, never names
    if props is None or not props.is_sign:
        raise _unsupported(
            conv, where, f"weight binarizer {describe_binarizer(conv.weight_binarizer)}"
        )
    scaled = props.scale == "mean_abs_per_output"
    alpha = np.abs(w).mean(axis=(1, 2, 3)) if scaled else np.ones(len(w))
    a, b = _bn(bn, f"{where}.bn")
    if conv.bias is not None:
        b = b + a * _np(conv.bias)
    if g.sign_mode == "qonnx":  # the float weights, binarized by a BipolarQuant node
        k, s, p = _geometry(conv, where)
        wq = g.sign(g.const(f"{where}.weight", w), f"{where}.weight")
        y = g.op("Conv", [x, wq], where, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    else:
        y = g.conv(x, np.where(w >= 0, 1.0, -1.0), None, conv, where)
    y = g.op("Mul", [y, g.channel_const(f"{where}.scale", alpha * a)], f"{where}.scale")
    return g.op("Add", [y, g.channel_const(f"{where}.bias", b)], f"{where}.bias")


def _avg_pool(g: _Graph, x: str, pool: nn.AvgPool2d, where: str) -> str:
    k, s, p = _pool_args(pool)
    if None in (k, s) or p != 0:
        raise _unsupported(pool, where, "non-square or padded average pool")
    return g.op(
        "AveragePool",
        [x],
        where,
        kernel_shape=[k, k],
        strides=[s, s],
        ceil_mode=int(pool.ceil_mode),
        count_include_pad=int(pool.count_include_pad),
    )


def _shortcut(g: _Graph, x: str, sc: nn.Module | None, in_channels: int, where: str):
    if sc is None:
        return None
    if type(sc) is nn.Identity:
        return x
    if type(sc) is ZeroPadShortcut:
        return _zero_pad(g, x, sc, where)
    if type(sc) is nn.AvgPool2d:
        return _avg_pool(g, x, sc, where)
    if type(sc).__name__ == "TileShortcut":  # cat([x, x, ...], 1)[:, :out_channels]
        copies = -(-sc.out_channels // in_channels)
        y = g.op("Concat", [x] * copies, where, axis=1) if copies > 1 else x
        i64 = np.int64
        return g.op(
            "Slice",
            [
                y,
                g.const(f"{where}.start", [0], i64),
                g.const(f"{where}.end", [sc.out_channels], i64),
                g.const(f"{where}.axes", [1], i64),
            ],
            where,
        )
    if type(sc) is not nn.Sequential:
        raise _unsupported(sc, where, "unknown shortcut")
    layers = list(sc)
    off = 0
    if layers and type(layers[0]) is nn.AvgPool2d:
        x = _avg_pool(g, x, layers.pop(0), f"{where}.0")
        off = 1
    if len(layers) != 2 or type(layers[0]) is not nn.Conv2d or layers[0].groups != 1:
        raise _unsupported(sc, where, "shortcut must be [AvgPool2d,] Conv2d, BatchNorm2d")
    conv = layers[0]
    return _folded_conv(g, x, conv, _np(conv.weight), layers[1], f"{where}.{off}")


def _zero_pad(g: _Graph, x: str, sc: ZeroPadShortcut, where: str) -> str:
    """Subsample by the stride, then zero-pad (or drop) channels: Slice and Pad."""
    i64 = np.int64
    if sc.stride > 1:
        x = g.op(
            "Slice",
            [
                x,
                g.const(f"{where}.start", [0, 0], i64),
                g.const(f"{where}.end", [_INT64_MAX, _INT64_MAX], i64),
                g.const(f"{where}.axes", [2, 3], i64),
                g.const(f"{where}.steps", [sc.stride] * 2, i64),
            ],
            where,
        )
    extra = sc.out_channels - sc.in_channels
    if extra > 0:
        pads = [0, extra // 2, 0, 0, 0, extra - extra // 2, 0, 0]
        x = g.op("Pad", [x, g.const(f"{where}.pads", pads, i64)], where)
    elif extra < 0:
        x = g.op(
            "Slice",
            [
                x,
                g.const(f"{where}.start", [0], i64),
                g.const(f"{where}.end", [sc.out_channels], i64),
                g.const(f"{where}.axes", [1], i64),
            ],
            where,
        )
    return x


def _unit(g: _Graph, x: str, unit: BinaryUnit, where: str) -> str:
    conv = unit.conv
    if type(conv) is not BinaryConv2d or conv.groups != 1:
        raise _unsupported(conv, f"{where}.conv", "expected a dense BinaryConv2d")
    if type(unit.shift) is RSign:
        bias = g.channel_const(f"{where}.shift", _np(unit.shift.shift.bias))
        y = g.op("Add", [x, bias], f"{where}.shift")
    elif type(unit.shift) is nn.Identity:
        y = x
    else:
        raise _unsupported(unit.shift, f"{where}.shift", "expected Identity or RSign")
    if conv.input_binarizer is not None:
        props = binarizer_properties(conv.input_binarizer)
        if props is None or not props.is_sign or props.scale != "none":
            name = describe_binarizer(conv.input_binarizer)
            raise _unsupported(conv, f"{where}.conv", f"input binarizer {name}")
        y = g.sign(y, f"{where}.conv")
    y = _binary_conv(g, y, conv, unit.bn, f"{where}.conv")
    sc = _shortcut(g, x, unit.shortcut, conv.in_channels, f"{where}.shortcut")
    if sc is not None:
        y = g.op("Add", [y, sc], f"{where}.add")
    return _activation(g, y, unit.act, f"{where}.act")


def _head(g: _Graph, x: str, head: nn.Module) -> str:
    try:
        w, b = head_weights(head)
    except UnsupportedModule as exc:
        raise _unsupported(exc.module, exc.where, exc.why) from None
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "head.pool")], "head.flatten", axis=1)
    return g.op(
        "Gemm",
        [x, g.const("head.fc.weight", w), g.const("head.fc.bias", b)],
        "head.fc",
        transB=1,
    )


def to_onnx(
    model: nn.Module,
    *,
    opset: int = MIN_OPSET,
    size: tuple[int, int] | None = None,
    sign: str = "exact",
    batch: int | None = None,
):
    """The ``onnx.ModelProto`` of a dwr backbone (input ``"input"`` NCHW float32, output
    ``"logits"``), binarizers written as ``sign`` (one of :data:`SIGN_MODES`). Raises
    :class:`DwrError` at the first module it cannot express. The batch dimension is symbolic
    unless ``batch`` is given; QONNX tools (FINN) need static shapes, so ``"qonnx"`` fixes it
    to 1 by default."""
    onnx = _require_onnx()
    if sign not in SIGN_MODES:
        raise DwrError(f"unknown sign mode {sign!r}; choose one of {list(SIGN_MODES)}")
    if not isinstance(model, Backbone):
        raise DwrError(
            f"ONNX export takes dwr backbones (dwr.create_model); got {type(model).__name__}"
        )
    if opset < MIN_OPSET or opset > onnx.defs.onnx_opset_version():
        raise DwrError(
            f"opset {opset} is out of range; choose {MIN_OPSET}..{onnx.defs.onnx_opset_version()}"
        )
    if batch is None and sign == "qonnx":
        batch = 1
    if batch is not None and batch < 1:
        raise DwrError(f"batch must be >= 1, got {batch}")
    n = "batch" if batch is None else batch
    c, h, w = model.spec.input_size
    if size is not None:
        h, w = size
        if h < 1 or w < 1:
            raise DwrError(f"input size must be positive, got {h}x{w}")
    g = _Graph(onnx, sign)
    x = _stem(g, "input", model.stem)
    for i, stage in enumerate(model.stages):
        if type(stage) is not nn.Sequential:
            raise _unsupported(stage, f"stages.{i}", "a stage must be an nn.Sequential")
        for j, m in enumerate(stage):
            where = f"stages.{i}.{j}"
            x = _unit(g, x, m, where) if type(m) is BinaryUnit else _maxpool(g, x, m, where)
    g.nodes.append(onnx.helper.make_node("Identity", [_head(g, x, model.head)], ["logits"]))
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes,
        model.spec.name or "dwr",
        [onnx.helper.make_tensor_value_info("input", f32, [n, c, h, w])],
        [onnx.helper.make_tensor_value_info("logits", f32, [n, model.spec.num_classes])],
        g.inits,
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    if sign == "qonnx":
        opsets.append(onnx.helper.make_opsetid(QONNX_DOMAIN, 1))
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="dwr")
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime >= 1.16
    proto.doc_string = f"dwr backbone spec: {model.spec.to_json()}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # would be a bug in this module
        raise DwrError(f"the exported graph is invalid: {str(exc).splitlines()[0]}") from None
    return proto


def export_onnx(model: nn.Module, path: str | os.PathLike, **options) -> None:
    """Write :func:`to_onnx` of ``model`` to ``path`` atomically."""
    from dwr.files import atomic_write

    proto = to_onnx(model, **options)
    atomic_write(path, proto.SerializeToString())
