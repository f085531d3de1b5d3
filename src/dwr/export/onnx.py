"""ONNX export of a dwr backbone with standard operators only (opset >= 17).

The graph is written op by op from the backbone's lowered ops (:mod:`dwr.lowering`, the
same list the engine compiles; no tracing); a module the lowering does not know raises
:class:`DwrError` naming the module's type and qualified name. Eval-mode semantics (BN
running statistics, folded in float64).

- Binarization is ``Sign``. dwr's sign maps 0 to +1 while ONNX's maps it to 0, so by default
  an activation becomes ``Sign(Sign(x) + 0.5)`` (larq's form, exact for every input);
  ``sign="plain"`` emits the single ``Sign`` that BNN toolchains pattern-match, which
  differs only where a binarizer input is exactly 0 (rare in a trained model).
  ``sign="qonnx"`` writes QONNX's ``BipolarQuant`` (domain ``qonnx.custom_op.general``, the
  input format of FINN) for activations and for the ±1 weights; the rest stays standard.
- A binary convolution is ``Conv`` with constant weights ``sign(W)`` (exactly ±1), then one
  per-channel ``Mul`` and ``Add`` holding the weight scale and the BN that follows, folded:
  ``BN(alpha_o * dot) = (alpha_o * a_o) * dot + b_o`` with ``BN(z) = a * z + b`` and
  ``alpha_o = mean |W_o|`` (``scaled_sign``; 1 for ``ste_sign``); float64, then float32. On
  ±1 inputs every dot is an integer, exact in float32, as in the XNOR/popcount engine.
  Real-valued convolutions (stem, shortcuts) carry their BN in their weights and bias; a
  full-precision unit (``binary=False``) is the same ``Conv -> Mul -> Add`` with real weights.
  Padding happens after the sign, so a padded tap is 0, as in dwr.
- RSign is ``Add``, RPReLU ``Add -> PRelu -> Add``, Hardtanh ``Clip``, the stem adapter
  ``Gather -> Mul -> Add -> PRelu`` (each output channel reads one input channel), the tiling
  shortcut ``Concat -> Slice``, average-pool shortcuts ``AveragePool`` in ceil mode.

The batch dimension is symbolic (``"batch"``; 1 for QONNX, whose tools want static shapes);
height and width are fixed (the spec's input size or ``size``). onnxruntime's default graph
optimizations fold the Mul and Add back into the conv weights; that rounds a dot that is
exactly 0 to a tiny value, so a fresh model (whose identity BN puts many pre-activations on 0)
matches exactly only with optimizations off.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from dwr.errors import DwrError
from dwr.lowering import ops as lo

if TYPE_CHECKING:
    import torch
    from torch import nn

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

    def conv(self, x: str, w: np.ndarray, b: np.ndarray, k: int, s: int, p: int, where: str):
        """A real-valued ``k`` x ``k`` convolution with constant weights and bias."""
        inputs = [x, self.const(f"{where}.weight", w), self.const(f"{where}.bias", b)]
        return self.op("Conv", inputs, where, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)


def _activation(g: _Graph, x: str, act: str, rprelu: tuple | None, where: str) -> str:
    if act == "hardtanh":
        return g.op("Clip", [x, g.const(f"{where}.min", -1.0), g.const(f"{where}.max", 1.0)], where)
    if act == "rprelu":
        shift_in, slope, shift_out = rprelu
        x = g.op("Add", [x, g.channel_const(f"{where}.gamma", shift_in)], where)
        x = _prelu(g, x, slope, f"{where}.prelu")
        return g.op("Add", [x, g.channel_const(f"{where}.zeta", shift_out)], where)
    return x


def _prelu(g: _Graph, x: str, slope: np.ndarray, where: str) -> str:
    return g.op("PRelu", [x, g.const(f"{where}.slope", np.reshape(slope, (-1, 1, 1)))], where)


def _pool(g: _Graph, x: str, kind: str, geometry: tuple[int, int, int], where: str, **attrs):
    k, s, p = geometry
    return g.op(kind, [x], where, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, **attrs)


def _stem(g: _Graph, x: str, op: lo.StemConv) -> str:
    x = g.conv(x, op.w, op.b, op.k, op.stride, op.pad, "stem.conv")
    x = _activation(g, x, op.act, op.rprelu, "stem.act")
    pool = lo.STEM_POOLS[op.pool]
    return x if pool is None else _pool(g, x, "MaxPool", pool, "stem.pool")


def _adapter(g: _Graph, x: str, op: lo.StemAdapter) -> str:
    """``PReLU(x[:, src] * scale + shift)``: a channel Gather, Mul, Add and PRelu."""
    y = g.op("Gather", [x, g.const(f"{op.name}.src", op.src, np.int64)], op.name, axis=1)
    y = g.op("Mul", [y, g.channel_const(f"{op.name}.scale", op.scale)], op.name)
    y = g.op("Add", [y, g.channel_const(f"{op.name}.shift", op.shift)], op.name)
    return _prelu(g, y, op.slope, f"{op.name}.act")


def _binary_conv(g: _Graph, x: str, op: lo.BinaryConv) -> str:
    """``Conv(x, W) * scale + bias``: ``W`` stays exactly ±1, so on ±1 inputs every dot
    product is an integer, exact in float32 (what XNOR/popcount computes); the weight scale
    and the BN act after it."""
    where = f"{op.name}.conv"
    if g.sign_mode == "qonnx" and op.binary_weight:  # weights binarized by a BipolarQuant node
        w = g.sign(g.const(f"{where}.weight", op.weight), f"{where}.weight")
    else:
        w = g.const(f"{where}.weight", op.weight)
    k, s, p = op.k, op.stride, op.pad
    y = g.op("Conv", [x, w], where, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    y = g.op("Mul", [y, g.channel_const(f"{where}.scale", op.scale)], f"{where}.scale")
    return g.op("Add", [y, g.channel_const(f"{where}.bias", op.bias)], f"{where}.bias")


def _channel_slice(g: _Graph, x: str, end: int, where: str) -> str:
    i64 = np.int64
    starts, ends = g.const(f"{where}.start", [0], i64), g.const(f"{where}.end", [end], i64)
    return g.op("Slice", [x, starts, ends, g.const(f"{where}.axes", [1], i64)], where)


def _shortcut(g: _Graph, x: str, op: lo.BinaryConv) -> str | None:
    where, kind, s = f"{op.name}.shortcut", op.shortcut, op.sc_stride
    if kind == "none":
        return None
    if kind == "identity":
        return x
    if kind == "zero_pad":
        return _zero_pad(g, x, op, where)
    if kind == "tile":  # cat([x, x, ...], 1)[:, :out_channels]
        copies = -(-op.out_channels // op.in_channels)
        y = g.op("Concat", [x] * copies, where, axis=1) if copies > 1 else x
        return _channel_slice(g, y, op.out_channels, where)
    if kind in ("avgpool", "avgpool_conv") and s > 1:  # ceil mode, as the engine's pool
        x = _pool(g, x, "AveragePool", (s, s, 0), f"{where}.pool", ceil_mode=1, count_include_pad=0)
        s = 1
    if kind == "avgpool":
        return x
    return g.conv(x, op.sc_w, op.sc_b, 1, s, 0, f"{where}.conv")


def _zero_pad(g: _Graph, x: str, op: lo.BinaryConv, where: str) -> str:
    """Subsample by the stride, then zero-pad (or drop) channels: Slice and Pad."""
    i64 = np.int64
    if op.sc_stride > 1:
        x = g.op(
            "Slice",
            [
                x,
                g.const(f"{where}.start", [0, 0], i64),
                g.const(f"{where}.end", [_INT64_MAX, _INT64_MAX], i64),
                g.const(f"{where}.axes", [2, 3], i64),
                g.const(f"{where}.steps", [op.sc_stride] * 2, i64),
            ],
            where,
        )
    extra = op.out_channels - op.in_channels
    if extra > 0:
        pads = [0, extra // 2, 0, 0, 0, extra - extra // 2, 0, 0]
        return g.op("Pad", [x, g.const(f"{where}.pads", pads, i64)], where)
    return _channel_slice(g, x, op.out_channels, where) if extra < 0 else x


def _unit(g: _Graph, x: str, op: lo.BinaryConv) -> str:
    y = x
    if op.shift is not None:
        y = g.op("Add", [y, g.channel_const(f"{op.name}.shift", op.shift)], f"{op.name}.shift")
    if op.binary_input:
        y = g.sign(y, f"{op.name}.conv")
    y = _binary_conv(g, y, op)
    sc = _shortcut(g, x, op)
    if sc is not None:
        y = g.op("Add", [y, sc], f"{op.name}.add")
    return _activation(g, y, op.act, op.rprelu, f"{op.name}.act")


def _head(g: _Graph, x: str, op: lo.Head) -> str:
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x], "head.pool")], "head.flatten", axis=1)
    fc = [x, g.const("head.fc.weight", op.w), g.const("head.fc.bias", op.b)]
    return g.op("Gemm", fc, "head.fc", transB=1)


def _max_pool(g: _Graph, x: str, op: lo.MaxPool2) -> str:
    return _pool(g, x, "MaxPool", (2, 2, 0), op.name)


_WRITERS = {
    lo.StemConv: _stem,
    lo.StemAdapter: _adapter,
    lo.BinaryConv: _unit,
    lo.MaxPool2: _max_pool,
    lo.Head: _head,
}


def _lowered(
    model: nn.Module, size: tuple[int, int] | None, example: torch.Tensor | None
) -> list[lo.Op]:
    """The model's lowered ops (no sign folding: ONNX runs floats between units)."""
    from dwr.backbones.model import Backbone
    from dwr.lowering import lower
    from dwr.lowering.from_module import SUPPORTED_MODULES, UnsupportedModule

    spec = model.spec if isinstance(model, Backbone) else None
    if spec is None and example is None:
        raise DwrError(
            f"{type(model).__name__} is not a dwr backbone: exporting it traces it on an "
            "example NCHW input (example_input)"
        )
    input_size = None if spec is None else (spec.in_channels, *(size or spec.input_size[1:]))
    try:
        return lower(model, example, input_size=input_size, fold_signs=False)
    except UnsupportedModule as exc:
        raise DwrError(
            f"cannot export {exc} to ONNX; the exporter supports registered dwr backbones "
            f"({SUPPORTED_MODULES})"
        ) from None


def to_onnx(
    model: nn.Module,
    *,
    opset: int = MIN_OPSET,
    size: tuple[int, int] | None = None,
    sign: str = "exact",
    batch: int | None = None,
    example_input: torch.Tensor | None = None,
):
    """The ``onnx.ModelProto`` of a BNN (input ``"input"`` NCHW float32, output
    ``"logits"``), binarizers written as ``sign`` (one of :data:`SIGN_MODES`). A dwr backbone
    exports from its modules; any other ``nn.Module`` is lowered through ``torch.fx`` on
    ``example_input`` (NCHW), whose size the graph then has. Raises :class:`DwrError` at the
    first module it cannot express. The batch dimension is symbolic unless ``batch`` is given;
    QONNX tools (FINN) need static shapes, so ``"qonnx"`` fixes it to 1 by default."""
    onnx = _require_onnx()
    if sign not in SIGN_MODES:
        raise DwrError(f"unknown sign mode {sign!r}; choose one of {list(SIGN_MODES)}")
    if opset < MIN_OPSET or opset > onnx.defs.onnx_opset_version():
        raise DwrError(
            f"opset {opset} is out of range; choose {MIN_OPSET}..{onnx.defs.onnx_opset_version()}"
        )
    if batch is None and sign == "qonnx":
        batch = 1
    if batch is not None and batch < 1:
        raise DwrError(f"batch must be >= 1, got {batch}")
    n = "batch" if batch is None else batch
    if size is not None and min(size) < 1:
        raise DwrError(f"input size must be positive, got {size[0]}x{size[1]}")
    ops = _lowered(model, size, example_input)
    c, (h, w) = ops[0].in_channels, ops[0].in_hw
    g = _Graph(onnx, sign)
    x = "input"
    for op in ops:
        x = _WRITERS[type(op)](g, x, op)
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["logits"]))
    f32 = onnx.TensorProto.FLOAT
    spec = getattr(model, "spec", None)
    graph = onnx.helper.make_graph(
        g.nodes,
        (spec.name if spec else type(model).__name__) or "dwr",
        [onnx.helper.make_tensor_value_info("input", f32, [n, c, h, w])],
        [onnx.helper.make_tensor_value_info("logits", f32, [n, ops[-1].out_channels])],
        g.inits,
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    if sign == "qonnx":
        opsets.append(onnx.helper.make_opsetid(QONNX_DOMAIN, 1))
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="dwr")
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime >= 1.16
    if spec is not None:
        proto.doc_string = f"dwr backbone spec: {spec.to_json()}"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # would be a bug in this module
        raise DwrError(f"the exported graph is invalid: {str(exc).splitlines()[0]}") from None
    return proto


def export_onnx(model: nn.Module, path: str | os.PathLike, **options):
    """Write :func:`to_onnx` of ``model`` to ``path`` atomically; returns the proto."""
    from dwr.files import atomic_write

    proto = to_onnx(model, **options)
    atomic_write(path, proto.SerializeToString())
    return proto
