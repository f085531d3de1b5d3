"""The engine's ops: what a compiled model runs, in order, on NHWC activations.

State between ops is either float activations ``x`` ([N, H, W, C] float32) or sign bits
``bits`` ([N, H, W, ceil(C/64)] uint64, see :mod:`dwr.engine.pack`).

- :class:`FloatConv`: the real-valued stem, ``pool(act(conv(x) * a + b))`` with BN folded
  into the conv (``a = gamma / sqrt(var + eps)``, ``b = beta - mean * a``); run by the
  engine's own float kernels on its thread pool, in f32 or (opt-in ``precision="bf16"``)
  on bf16 weights and inputs with f32 sums, or (opt-in ``precision="int8"``) on per-channel
  int8 weights and per-image int8 inputs with exact int32 sums.
- :class:`BinaryConv`: one binary unit, ``act(scale * dot + bias + shortcut(x))`` where
  ``dot`` is the ±1 convolution (XNOR/popcount) of ``sign(x + shift)`` with ``sign(W)`` and
  ``scale = alpha * a`` folds the weight scale and BN. When the next op only needs the sign
  of this output (VGG: no shortcut, sign-preserving activation) it emits bits directly via an
  integer threshold: ``+1  iff  dot >= ceil(-bias/scale)`` (``dot <= floor(-bias/scale)``
  for negative scale).
- :class:`MaxPool2`: 2x2 max-pool, on floats or on bits (the AND of the negative-bits).
- :class:`Head`: global average pool and the linear classifier.
- :class:`ChannelAdapter`: the DWR authors' stem adapter (per-channel scale and shift of a
  gathered input channel, then PReLU), between the stem and stage 0 of ``stem_adapter`` specs.

Every op serialises to ``(meta, arrays)`` and rebuilds itself from them (:meth:`Op.from_file`,
validating both); ``@register_op`` makes it loadable, so a new op is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from dwr.engine import _kernels
from dwr.engine.pack import ceil4, words
from dwr.errors import DwrError
from dwr.lowering.ops import ACTIVATIONS, STEM_POOLS, check_unit

ACTS = ACTIVATIONS
POOLS = tuple(STEM_POOLS)
POOL_GEOMETRY = {k: v for k, v in STEM_POOLS.items() if v}  # (kernel, stride, padding)
#: Precisions of the stem conv: exact f32 (the default), or weights and input rounded to bf16
#: with the products summed in f32 (VDPBF16PS where the CPU has AVX512_BF16), or weights and
#: input quantized to int8 with exact int32 sums (VPDPBUSD where the CPU has AVX512_VNNI).
STEM_PRECISIONS = ("f32", "bf16", "int8")
#: The engine format a stem at each precision needs (older readers refuse the newer ones).
STEM_FORMATS = {"f32": 3, "bf16": 4, "int8": 5}
#: The engine format every op fits in, unless :meth:`Op.min_format` says more.
BASE_FORMAT = 3


@dataclass
class State:
    """Activations between ops: float NHWC ``x`` or packed sign ``bits``.

    Both are set when a binary conv has already packed the next binary conv's input along
    with its float output (``bits`` is then that conv's input, ``x`` its residual source).
    ``nchw`` marks the model's own input, which only the stem reads (as NCHW)."""

    x: np.ndarray | None = None
    bits: np.ndarray | None = None
    nchw: bool = False


def ceil8(n: int) -> int:
    return (n + 7) // 8 * 8


def _padded(v: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[: len(v)] = v
    return out


def dense_layout(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[O, C]`` weight and ``[O]`` bias -> the dense kernel's blocks of 64 outputs,
    ``[ceil(O/64), C, 64]``, and the bias padded to match (zeros in the padding)."""
    o, c = w.shape
    blocks = -(-o // 64)
    wp = np.zeros((blocks * 64, c), np.float32)
    wp[:o] = w
    wk = np.ascontiguousarray(wp.reshape(blocks, 64, c).transpose(0, 2, 1))
    return wk, _padded(b, blocks * 64)


def _float_conv_layout(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[O, C, k, k]`` weight and ``[O]`` bias -> the float kernel's ``[k, k, C, ceil8(O)]``
    weight and bias padded to ``ceil8(O)`` (zeros in the padding)."""
    o, c, k, _ = w.shape
    wk = np.zeros((k, k, c, ceil8(o)), np.float32)
    wk[..., :o] = w.transpose(2, 3, 1, 0)
    return wk, _padded(b, ceil8(o))


def round_bf16(a: np.ndarray) -> np.ndarray:
    """Finite float32 values rounded to the nearest bf16 value (ties to even), as float32."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(np.float32)


def _bf16_pairs(wk: np.ndarray) -> np.ndarray:
    """The float kernel's ``[k, k, C, Op]`` weight (bf16 values) as the native bf16 kernel's
    tap pairs, ``[k, ceil(k*C/2), Op, 2]`` bf16 bits (a zero ends an odd k*C)."""
    k, _, c, op = wk.shape
    pairs = -(-k * c // 2)
    rows = np.zeros((k, 2 * pairs, op), np.float32)
    rows[:, : k * c] = wk.reshape(k, k * c, op)
    bits = (rows.view(np.uint32) >> 16).astype(np.uint16)
    return np.ascontiguousarray(bits.reshape(k, pairs, 2, op).transpose(0, 1, 3, 2))


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 of an ``[O, ...]`` float32 weight: ``(wq, s)`` with
    ``s[o] = max|w[o]| / 127`` (float32) and ``wq[o] = round(w[o] / s[o])`` (to nearest even,
    in [-127, 127]; 0 where ``s[o]`` is 0). Deterministic, so files store only ``w``."""
    w = np.asarray(w, np.float32)
    flat = w.reshape(w.shape[0], -1)
    s = np.abs(flat).max(axis=1) / np.float32(127)
    safe = np.where(s > 0, s, np.float32(1))[:, None]
    wq = np.where(s[:, None] > 0, np.clip(np.rint(flat / safe), -127, 127), 0)
    return wq.astype(np.int8).reshape(w.shape), s.astype(np.float32)


def _int8_quads(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[O, C, k, k]`` float32 weight -> the int8 stem's ``[k, ceil(k*C/4), ceil8(O), 4]``
    weight quads (zeros pad the last quad and the outputs), ``wsum`` (int32, the sum of each
    output's int8 weights) and ``wscale`` (float32), both padded to ceil8(O)."""
    o, c, k, _ = w.shape
    wq, s = quantize_int8(w)
    quads = -(-k * c // 4)
    rows = np.zeros((k, 4 * quads, ceil8(o)), np.int8)
    rows[:, : k * c, :o] = wq.transpose(2, 3, 1, 0).reshape(k, k * c, o)
    wk = np.ascontiguousarray(rows.reshape(k, quads, 4, ceil8(o)).transpose(0, 1, 3, 2))
    wsum = np.zeros(ceil8(o), np.int32)
    wsum[:o] = wq.reshape(o, -1).astype(np.int32).sum(axis=1)
    return wk, wsum, _padded(s, ceil8(o))


def check_stem_precision(precision: Any) -> str:
    """``precision`` if it names one of :data:`STEM_PRECISIONS`, else a one-line DwrError."""
    if not (isinstance(precision, str) and precision in STEM_PRECISIONS):
        raise DwrError(
            f"stem precision must be one of {', '.join(STEM_PRECISIONS)}; got {precision!r}"
        )
    return precision


def _float_conv(
    x,
    wk,
    bk,
    o: int,
    stride: int,
    pad: int,
    act: str,
    rprelu: tuple,
    nchw: bool = False,
    wbf: np.ndarray | None = None,
) -> np.ndarray:
    """``act(conv(x) + b)`` of float32 ``x`` (NHWC, or NCHW with ``nchw``) on the engine's
    float kernel; the output is NHWC. With ``wbf`` (the bf16 tap pairs of ``wk``, which then
    holds bf16 values) the input is rounded to bf16 and the products summed in f32."""
    n, h, w = (x.shape[0], *x.shape[2:]) if nchw else x.shape[:3]
    k = wk.shape[0]
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    y = np.empty((n, oh, ow, o), np.float32)
    bf16 = wbf is not None
    _kernels.float_conv(
        x, wk, o, stride, pad, bk, ACTS[act], *rprelu, y, nchw=nchw, bf16=bf16, wbf=wbf
    )
    return y


def _max_pool(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    """k x k max-pool (stride s, padding p, floor) of NHWC float32 ``x``."""
    n, h, w, c = x.shape
    out = np.empty((n, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, c), np.float32)
    _kernels.max_pool(x, k, s, p, out)
    return out


def _vec(a: Any, n: int, what: str, dtype=np.float32) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(a, dtype=dtype))
    if a.shape != (n,):
        raise DwrError(f"{what} must have shape ({n},), got {a.shape}")
    return a


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise DwrError(msg)


def _act_arrays(act: str, rprelu: tuple | None, n: int, where: str) -> tuple:
    _check(act in ACTS, f"{where}: unknown activation {act!r}")
    if act != "rprelu":
        return None, None, None
    _check(rprelu is not None and len(rprelu) == 3, f"{where}: RPReLU needs three vectors")
    return tuple(_vec(v, n, f"{where} RPReLU") for v in rprelu)


class Fields:
    """One op's saved ``meta`` and ``arrays``, read with checks that name the op."""

    ACT_KEYS = ("act_in", "act_slope", "act_out")

    def __init__(self, name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.name, self._meta, self._arrays = name, meta, arrays

    def need(self, key: str) -> np.ndarray:
        _check(key in self._arrays, f"{self.name}: missing array {key!r}")
        return self._arrays[key]

    def get(self, key: str) -> np.ndarray | None:
        return self._arrays.get(key)

    def num(self, key: str, lo: int = 0, hi: int = 1 << 20) -> int:
        v = self._meta.get(key)
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        _check(ok, f"{self.name}: bad {key} {v!r}")
        return v

    def text(self, key: str) -> str:
        v = self._meta.get(key)
        _check(isinstance(v, str), f"{self.name}: bad {key} {v!r}")
        return v

    def text_or(self, key: str, default: str) -> str:
        """``text(key)``, or ``default`` where the file has no such key (an older format)."""
        return self.text(key) if key in self._meta else default

    def flag(self, key: str) -> bool:
        v = self._meta.get(key)
        _check(isinstance(v, bool), f"{self.name}: bad {key} {v!r}")
        return v

    def rprelu(self, act: str) -> tuple | None:
        return tuple(self.need(k) for k in self.ACT_KEYS) if act == "rprelu" else None


OP_TYPES: dict[str, type[Op]] = {}


def register_op(cls: type[Op]) -> type[Op]:
    """Make ``cls`` loadable from engine files under its ``kind``."""
    OP_TYPES[cls.kind] = cls
    return cls


@dataclass
class Op:
    """An engine op: runs on a :class:`State`, and writes and reads itself as ``(meta,
    arrays)`` (``meta``/``arrays`` to save, :meth:`from_file` to rebuild and validate)."""

    name: str
    kind: ClassVar[str] = ""
    #: dtype of each saved array (float32 unless named here).
    dtypes: ClassVar[dict[str, str]] = {}

    def meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def min_format(self) -> int:
        """The oldest engine format that holds this op (a file is written in the oldest
        format that holds all its ops, so older readers still load it)."""
        return BASE_FORMAT

    @classmethod
    def from_file(cls, f: Fields) -> Op:
        raise NotImplementedError

    def run(self, st: State) -> State:
        raise NotImplementedError


@register_op
@dataclass
class FloatConv(Op):
    """``pool(act(conv(x, w) + b))``, BN already folded into ``w`` and ``b``.

    ``precision="bf16"`` rounds ``w`` to bf16 here (once, and again harmlessly on load) and
    the input to bf16 at run time; the products of bf16 values are exact in f32 and add up in
    f32. Files with such a stem need engine format 4 (older readers refuse them).

    ``precision="int8"`` quantizes ``w`` per output channel (:func:`quantize_int8`, from the
    stored float ``w`` on every load) and each input image by its own ``max|x| / 127``; the
    int32 sums are exact, so every ISA gives the same outputs bit for bit. Format 5."""

    kind: ClassVar[str] = "float_conv"
    w: np.ndarray = field(default=None)  # [O, C, k, k]
    b: np.ndarray = field(default=None)  # [O]
    stride: int = 1
    pad: int = 0
    act: str = "none"
    rprelu: tuple | None = None
    pool: str = "none"
    precision: str = "f32"

    def __post_init__(self) -> None:
        self.w = np.ascontiguousarray(np.asarray(self.w, dtype=np.float32))
        _check(self.w.ndim == 4 and min(self.w.shape) >= 1, f"{self.name}: bad conv weight")
        _check(
            self.precision in STEM_PRECISIONS,
            f"{self.name}: unknown precision {self.precision!r} (one of {STEM_PRECISIONS})",
        )
        if self.precision == "bf16":
            self.w = round_bf16(self.w)
        o = self.w.shape[0]
        self.b = _vec(self.b, o, f"{self.name} bias")
        _check(
            self.w.shape[2] == self.w.shape[3] <= 15, f"{self.name}: kernel must be square, <= 15"
        )
        _check(
            self.stride >= 1 and 0 <= self.pad < self.w.shape[2], f"{self.name}: bad stride/padding"
        )
        _check(self.pool in POOLS, f"{self.name}: unknown pool {self.pool!r}")
        self.rprelu = _act_arrays(self.act, self.rprelu, o, self.name)
        _check(
            self.precision != "int8" or self.w[0].size * 127 * 127 < 2**31,
            f"{self.name}: an int8 stem's dot products must fit in int32 (C*k*k < 133143)",
        )
        self._wk, self._bk = _float_conv_layout(self.w, self.b)
        self._wbf = _bf16_pairs(self._wk) if self.precision == "bf16" else None
        self._int8 = _int8_quads(self.w) if self.precision == "int8" else None
        self._rk = tuple(None if v is None else _padded(v, ceil8(o)) for v in self.rprelu)

    def with_precision(self, precision: str) -> FloatConv:
        """This stem at another precision (one of :data:`STEM_PRECISIONS`)."""
        return replace(self, precision=check_stem_precision(precision))

    def min_format(self) -> int:
        return STEM_FORMATS[self.precision]

    @property
    def in_channels(self) -> int:
        return self.w.shape[1]

    @property
    def out_channels(self) -> int:
        return self.w.shape[0]

    def meta(self) -> dict[str, Any]:
        meta = {"stride": self.stride, "pad": self.pad, "act": self.act, "pool": self.pool}
        if self.precision != "f32":  # f32 files stay as older dwr wrote and reads them
            meta["precision"] = self.precision
        return meta

    @classmethod
    def from_file(cls, f: Fields) -> FloatConv:
        act, w = f.text("act"), f.need("w")
        _check(w.ndim == 4 and w.shape[2] == w.shape[3], f"{f.name}: weight must be [O, C, k, k]")
        return cls(
            f.name,
            w=w,
            b=f.need("b"),
            stride=f.num("stride", 1, 64),
            pad=f.num("pad", 0, 64),
            act=act,
            rprelu=f.rprelu(act),
            pool=f.text("pool"),
            precision=f.text_or("precision", "f32"),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"w": self.w, "b": self.b}
        if self.act == "rprelu":
            out.update(zip(("act_in", "act_slope", "act_out"), self.rprelu, strict=True))
        return out

    def run(self, st: State) -> State:
        y = self._conv_int8(st) if self._int8 is not None else self._conv(st)
        if self.pool != "none":
            y = _max_pool(y, *POOL_GEOMETRY[self.pool])
        return State(x=y)

    def _conv_int8(self, st: State) -> np.ndarray:
        """The conv on the int8 kernel (exact int32 sums, float epilogue)."""
        x, k, s, p = st.x, self.w.shape[2], self.stride, self.pad
        n, h, w = (x.shape[0], *x.shape[2:]) if st.nchw else x.shape[:3]
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        y = np.empty((n, oh, ow, self.out_channels), np.float32)
        wq, wsum, wscale = self._int8
        _kernels.float_conv_int8(
            x,
            wq,
            wsum,
            wscale,
            self.out_channels,
            s,
            p,
            self._bk,
            ACTS[self.act],
            *self._rk,
            y,
            nchw=st.nchw,
        )
        return y

    def _conv(self, st: State) -> np.ndarray:
        return _float_conv(
            st.x,
            self._wk,
            self._bk,
            self.out_channels,
            self.stride,
            self.pad,
            self.act,
            self._rk,
            nchw=st.nchw,
            wbf=self._wbf,
        )


@register_op
@dataclass
class BinaryConv(Op):
    """One binary unit: ``act(scale * (sign(x + shift) (*) sign(W)) + bias + shortcut(x))``."""

    kind: ClassVar[str] = "binary_conv"
    dtypes: ClassVar[dict[str, str]] = {
        "wbits": "uint64",
        "wpop": "int32",
        "thr": "int32",
        "flip": "uint8",
    }
    in_channels: int = 0
    out_channels: int = 0
    k: int = 3
    stride: int = 1
    pad: int = 1
    wbits: np.ndarray = field(default=None)  # [ceil4(O)/4, k*k*words(C), 4] uint64 lanes
    wpop: np.ndarray = field(default=None)  # [O, k*k] int32
    scale: np.ndarray = field(default=None)  # [O]
    bias: np.ndarray = field(default=None)  # [O]
    shift: np.ndarray | None = None  # [C] RSign threshold, added before the sign
    shortcut: str = "none"
    sc_stride: int = 1
    sc_w: np.ndarray | None = None  # [O, C, 1, 1] with BN folded
    sc_b: np.ndarray | None = None
    act: str = "none"
    rprelu: tuple | None = None
    out: str = "float"  # "float" or "bits"
    thr: np.ndarray | None = None  # [O] int32, for out == "bits"
    flip: np.ndarray | None = None  # [O] uint8

    def __post_init__(self) -> None:
        c, o, k, where = self.in_channels, self.out_channels, self.k, self.name
        check_unit(where, c, o, k, self.stride, self.pad, self.shortcut, self.sc_stride)
        self.wbits = np.ascontiguousarray(self.wbits, dtype=np.uint64)
        _check(
            self.wbits.shape == (ceil4(o) // 4, k * k * words(c), 4),
            f"{where}: packed weight has shape {self.wbits.shape}",
        )
        self._wprep: dict[str, np.ndarray] = {}  # wbits repacked per kernel ISA, at first use
        self.wpop = np.ascontiguousarray(self.wpop, dtype=np.int32)
        _check(self.wpop.shape == (o, k * k), f"{where}: weight popcounts have a bad shape")
        self.scale = _vec(self.scale, o, f"{where} scale")
        self.bias = _vec(self.bias, o, f"{where} bias")
        if self.shift is not None:
            self.shift = _vec(self.shift, c, f"{where} shift")
        if self.shortcut in ("conv", "avgpool_conv"):
            self.sc_w = np.ascontiguousarray(self.sc_w, dtype=np.float32)
            _check(self.sc_w.shape == (o, c, 1, 1), f"{where}: shortcut weight shape")
            self.sc_b = _vec(self.sc_b, o, f"{where} shortcut bias")
            self._sc = _float_conv_layout(self.sc_w, self.sc_b)
        self.rprelu = _act_arrays(self.act, self.rprelu, o, where)
        self._pack_next = False  # see feeds()
        self._next_shift: np.ndarray | None = None
        _check(self.out in ("float", "bits"), f"{where}: unknown output {self.out!r}")
        if self.out == "bits":
            _check(
                self.shortcut == "none" and self.act in ("none", "hardtanh"),
                f"{where}: bit output needs no shortcut and a sign-preserving activation",
            )
            self.thr = _vec(self.thr, o, f"{where} thresholds", np.int32)
            self.flip = _vec(self.flip, o, f"{where} flips", np.uint8)

    def feeds(self, nxt: BinaryConv) -> None:
        """Pack ``nxt``'s input bits (the sign of this op's float output plus ``nxt.shift``) in
        this op's epilogue, while the values are in registers, instead of in ``nxt``."""
        _check(
            self.out == "float" and nxt.in_channels == self.out_channels,
            f"{self.name}: cannot pack the input of {nxt.name}",
        )
        self._pack_next, self._next_shift = True, nxt.shift

    def meta(self) -> dict[str, Any]:
        keys = ("in_channels", "out_channels", "k", "stride", "pad", "shortcut", "sc_stride")
        return {**{key: getattr(self, key) for key in keys}, "act": self.act, "out": self.out}

    @classmethod
    def from_file(cls, f: Fields) -> BinaryConv:
        act, out, shortcut = f.text("act"), f.text("out"), f.text("shortcut")
        conv_sc = shortcut in ("conv", "avgpool_conv")
        return cls(
            f.name,
            in_channels=f.num("in_channels", 1, 1 << 16),
            out_channels=f.num("out_channels", 1, 1 << 16),
            k=f.num("k", 1, 7),
            stride=f.num("stride", 1, 64),
            pad=f.num("pad", 0, 6),
            wbits=f.need("wbits"),
            wpop=f.need("wpop"),
            scale=f.need("scale"),
            bias=f.need("bias"),
            shift=f.get("shift"),
            shortcut=shortcut,
            sc_stride=f.num("sc_stride", 1, 64),
            sc_w=f.need("sc_w") if conv_sc else None,
            sc_b=f.need("sc_b") if conv_sc else None,
            act=act,
            rprelu=f.rprelu(act),
            out=out,
            thr=f.need("thr") if out == "bits" else None,
            flip=f.need("flip") if out == "bits" else None,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"wbits": self.wbits, "wpop": self.wpop, "scale": self.scale, "bias": self.bias}
        if self.shift is not None:
            out["shift"] = self.shift
        if self.shortcut in ("conv", "avgpool_conv"):
            out["sc_w"], out["sc_b"] = self.sc_w, self.sc_b
        if self.act == "rprelu":
            out.update(zip(("act_in", "act_slope", "act_out"), self.rprelu, strict=True))
        if self.out == "bits":
            out["thr"], out["flip"] = self.thr, self.flip
        return out

    def _prepared(self) -> np.ndarray:
        """The weight in the active kernels' own layout (files hold the ISA-neutral lanes)."""
        isa = _kernels.isa()
        if isa not in self._wprep:
            self._wprep[isa] = _kernels.prepare_weight(self.wbits)
        return self._wprep[isa]

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        return (h + 2 * self.pad - self.k) // self.stride + 1, (w + 2 * self.pad - self.k) // (
            self.stride
        ) + 1

    def _residual(self, x: np.ndarray) -> np.ndarray | None:
        if self.shortcut == "none":
            return None
        if self.shortcut == "identity":
            return x
        if self.shortcut == "zero_pad":
            r = x[:, :: self.sc_stride, :: self.sc_stride, :]
            extra = self.out_channels - self.in_channels
            if extra > 0:
                r = np.pad(r, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
            elif extra < 0:
                r = r[..., : self.out_channels]
            return np.ascontiguousarray(r, dtype=np.float32)
        if self.shortcut == "tile":  # cat([x, x, ...])[..., :O]
            copies = -(-self.out_channels // self.in_channels)
            return np.ascontiguousarray(np.tile(x, copies)[..., : self.out_channels])
        stride = self.sc_stride
        if self.shortcut in ("avgpool_conv", "avgpool") and stride > 1:
            n, h, w, c = x.shape
            pooled = np.empty((n, -(-h // stride), -(-w // stride), c), np.float32)
            _kernels.avg_pool_ceil(x, stride, pooled)
            x, stride = pooled, 1
        if self.shortcut == "avgpool":
            return x
        return _float_conv(x, *self._sc, self.out_channels, stride, 0, "none", (None,) * 3)

    def run(self, st: State) -> State:
        if st.bits is not None:
            bits = st.bits
        else:
            x = st.x
            bits = np.empty(x.shape[:3] + (words(self.in_channels),), dtype=np.uint64)
            _kernels.pack_signs(x, self.shift, bits)
        n, h, w, _ = bits.shape
        oh, ow = self.out_size(h, w)
        if self.out == "bits":
            out = np.empty((n, oh, ow, words(self.out_channels)), dtype=np.uint64)
            _kernels.conv_bits(
                bits,
                self.wbits,
                self.wpop,
                self.in_channels,
                self.k,
                self.stride,
                self.pad,
                self.thr,
                self.flip,
                out,
                wprep=self._prepared(),
            )
            return State(bits=out)
        res = self._residual(st.x) if self.shortcut != "none" else None
        out = np.empty((n, oh, ow, self.out_channels), dtype=np.float32)
        packed = (
            np.empty((n, oh, ow, words(self.out_channels)), dtype=np.uint64)
            if self._pack_next
            else None
        )
        a_in, a_slope, a_out = self.rprelu
        _kernels.conv_float(
            bits,
            self.wbits,
            self.wpop,
            self.in_channels,
            self.k,
            self.stride,
            self.pad,
            self.scale,
            self.bias,
            res,
            ACTS[self.act],
            a_in,
            a_slope,
            a_out,
            out,
            wprep=self._prepared(),
            next_bits=packed,
            next_shift=self._next_shift if self._pack_next else None,
        )
        return State(x=out, bits=packed)


@register_op
@dataclass
class MaxPool2(Op):
    """2x2 stride-2 max-pool (floor): on floats, or on sign bits as an AND of negatives."""

    kind: ClassVar[str] = "maxpool2"
    on_bits: bool = False

    def meta(self) -> dict[str, Any]:
        return {"on_bits": bool(self.on_bits)}

    @classmethod
    def from_file(cls, f: Fields) -> MaxPool2:
        return cls(f.name, on_bits=f.flag("on_bits"))

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def run(self, st: State) -> State:
        if st.bits is not None:
            n, h, w, cw = st.bits.shape
            out = np.empty((n, h // 2, w // 2, cw), dtype=np.uint64)
            _kernels.pool_bits_2x2(st.bits, out)
            return State(bits=out)
        return State(x=_max_pool(st.x, 2, 2, 0))


@register_op
@dataclass
class Head(Op):
    """``fc(mean_{h,w} x)``: global average pool and the real-valued classifier."""

    kind: ClassVar[str] = "head"
    w: np.ndarray = field(default=None)  # [classes, C]
    b: np.ndarray = field(default=None)  # [classes]

    def __post_init__(self) -> None:
        self.w = np.ascontiguousarray(np.asarray(self.w, dtype=np.float32))
        _check(self.w.ndim == 2 and min(self.w.shape) >= 1, f"{self.name}: bad classifier")
        o = self.w.shape[0]
        self.b = _vec(self.b, o, f"{self.name} bias")
        self._wk, self._bk = dense_layout(self.w, self.b)

    @property
    def in_channels(self) -> int:
        return self.w.shape[1]

    @classmethod
    def from_file(cls, f: Fields) -> Head:
        return cls(f.name, w=f.need("w"), b=f.need("b"))

    def meta(self) -> dict[str, Any]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w": self.w, "b": self.b}

    def run(self, st: State) -> State:
        n, h, w, c = st.x.shape
        # global average: one ceil-mode window covering the whole map
        pooled = np.empty((n, 1, 1, c), np.float32)
        _kernels.avg_pool_ceil(st.x, max(h, w), pooled)
        out = np.empty((n, self.w.shape[0]), np.float32)
        _kernels.dense(pooled.reshape(n, c), self._wk, self._bk, out)
        return State(x=out)


@register_op
@dataclass
class ChannelAdapter(Op):
    """The DWR authors' stem adapter on floats: ``prelu(scale * x[..., src] + shift)``.

    ``PReLU(cat(BN(dwconv1x1(x)), x, ...)[:, :O])`` with the depthwise conv and BN folded:
    output channel ``o < C`` reads input ``o`` with that scale and shift, ``o >= C`` is a copy
    of input ``o mod C`` (scale 1, shift 0). A per-channel gather, multiply-add and PReLU.
    """

    kind: ClassVar[str] = "channel_adapter"
    dtypes: ClassVar[dict[str, str]] = {"src": "int32"}
    in_channels: int = 0
    src: np.ndarray = field(default=None)  # [O] int32, the input channel each output reads
    scale: np.ndarray = field(default=None)  # [O]
    shift: np.ndarray = field(default=None)  # [O]
    slope: np.ndarray = field(default=None)  # [O] PReLU slope for negative values

    def __post_init__(self) -> None:
        self.src = np.ascontiguousarray(np.asarray(self.src, dtype=np.int32))
        o = self.src.shape[0] if self.src.ndim == 1 else 0
        _check(self.in_channels >= 1 and o >= 1, f"{self.name}: bad channels")
        _check(
            bool(((self.src >= 0) & (self.src < self.in_channels)).all()),
            f"{self.name}: source channels out of range",
        )
        self.scale = _vec(self.scale, o, f"{self.name} scale")
        self.shift = _vec(self.shift, o, f"{self.name} shift")
        self.slope = _vec(self.slope, o, f"{self.name} slope")

    @property
    def out_channels(self) -> int:
        return int(self.src.shape[0])

    @classmethod
    def from_file(cls, f: Fields) -> ChannelAdapter:
        return cls(
            f.name,
            in_channels=f.num("in_channels", 1, 1 << 16),
            src=f.need("src"),
            scale=f.need("scale"),
            shift=f.need("shift"),
            slope=f.need("slope"),
        )

    def meta(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"src": self.src, "scale": self.scale, "shift": self.shift, "slope": self.slope}

    def run(self, st: State) -> State:
        # in place on one gathered copy: 4x faster than fancy indexing and np.where
        y = np.take(st.x, self.src, axis=3)
        y *= self.scale
        y += self.shift
        neg = np.minimum(y, 0)
        np.maximum(y, 0, out=y)
        neg *= self.slope
        y += neg  # prelu(y) = max(y, 0) + slope * min(y, 0)
        return State(x=y)
