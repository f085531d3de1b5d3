"""The engine's ops: what a compiled model runs, in order, on NHWC activations.

State between ops is either float activations ``x`` ([N, H, W, C] float32) or sign bits
``bits`` ([N, H, W, ceil(C/64)] uint64, see :mod:`dwr.engine.pack`).

- :class:`FloatConv`: the real-valued stem, ``pool(act(conv(x) * a + b))`` with BN folded
  into the conv (``a = gamma / sqrt(var + eps)``, ``b = beta - mean * a``); run by PyTorch.
- :class:`BinaryConv`: one binary unit, ``act(scale * dot + bias + shortcut(x))`` where
  ``dot`` is the ±1 convolution (XNOR/popcount) of ``sign(x + shift)`` with ``sign(W)`` and
  ``scale = alpha * a`` folds the weight scale and BN. When the next op only needs the sign
  of this output (VGG: no shortcut, sign-preserving activation) it emits bits directly via an
  integer threshold: ``+1  iff  dot >= ceil(-bias/scale)`` (``dot <= floor(-bias/scale)``
  for negative scale).
- :class:`MaxPool2`: 2x2 max-pool, on floats or on bits (the AND of the negative-bits).
- :class:`Head`: global average pool and the linear classifier.

Every op serialises to ``(meta, arrays)`` and validates both when rebuilt from a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from dwr.engine import _kernels
from dwr.engine.pack import ceil4, words
from dwr.errors import DwrError

ACTS = {"none": 0, "hardtanh": 1, "rprelu": 2}
SHORTCUTS = ("none", "identity", "conv", "avgpool_conv", "zero_pad")
POOLS = ("none", "max3", "max2")


@dataclass
class State:
    """Activations between ops: float NHWC ``x`` or packed sign ``bits`` (one is set)."""

    x: np.ndarray | None = None
    bits: np.ndarray | None = None


def _nchw(x: np.ndarray) -> torch.Tensor:
    """A channels-last NCHW tensor view of NHWC ``x`` (no copy)."""
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    """NHWC float32 array of an NCHW tensor (no copy when it is channels-last)."""
    return np.ascontiguousarray(t.permute(0, 2, 3, 1).numpy(), dtype=np.float32)


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


@dataclass
class Op:
    name: str
    kind: ClassVar[str] = ""

    def meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def run(self, st: State) -> State:
        raise NotImplementedError


@dataclass
class FloatConv(Op):
    """``pool(act(conv(x, w) + b))``, BN already folded into ``w`` and ``b``."""

    kind: ClassVar[str] = "float_conv"
    w: np.ndarray = field(default=None)  # [O, C, k, k]
    b: np.ndarray = field(default=None)  # [O]
    stride: int = 1
    pad: int = 0
    act: str = "none"
    rprelu: tuple | None = None
    pool: str = "none"

    def __post_init__(self) -> None:
        self.w = np.ascontiguousarray(np.asarray(self.w, dtype=np.float32))
        _check(self.w.ndim == 4 and min(self.w.shape) >= 1, f"{self.name}: bad conv weight")
        o = self.w.shape[0]
        self.b = _vec(self.b, o, f"{self.name} bias")
        _check(self.stride >= 1 and self.pad >= 0, f"{self.name}: bad stride/padding")
        _check(self.pool in POOLS, f"{self.name}: unknown pool {self.pool!r}")
        self.rprelu = _act_arrays(self.act, self.rprelu, o, self.name)
        self._w = torch.from_numpy(self.w).contiguous(memory_format=torch.channels_last)
        self._b = torch.from_numpy(self.b)
        self._r = [torch.from_numpy(v).view(1, -1, 1, 1) for v in self.rprelu if v is not None]

    @property
    def in_channels(self) -> int:
        return self.w.shape[1]

    @property
    def out_channels(self) -> int:
        return self.w.shape[0]

    def meta(self) -> dict[str, Any]:
        return {"stride": self.stride, "pad": self.pad, "act": self.act, "pool": self.pool}

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"w": self.w, "b": self.b}
        if self.act == "rprelu":
            out.update(zip(("act_in", "act_slope", "act_out"), self.rprelu, strict=True))
        return out

    def run(self, st: State) -> State:
        t = _nchw(st.x) if st.x is not None else None
        y = F.conv2d(t, self._w, self._b, self.stride, self.pad)
        if self.act == "hardtanh":
            y = F.hardtanh(y)
        elif self.act == "rprelu":
            a_in, slope, a_out = self._r
            y = y + a_in
            y = torch.where(y >= 0, y, y * slope) + a_out
        if self.pool == "max3":
            y = F.max_pool2d(y, 3, 2, 1)
        elif self.pool == "max2":
            y = F.max_pool2d(y, 2)
        return State(x=_nhwc(y.contiguous(memory_format=torch.channels_last)))


@dataclass
class BinaryConv(Op):
    """One binary unit: ``act(scale * (sign(x + shift) (*) sign(W)) + bias + shortcut(x))``."""

    kind: ClassVar[str] = "binary_conv"
    in_channels: int = 0
    out_channels: int = 0
    k: int = 3
    stride: int = 1
    pad: int = 1
    wbits: np.ndarray = field(default=None)  # [ceil4(O), ceil4(k*k*words(C))] uint64
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
        _check(c >= 1 and o >= 1 and 1 <= k <= 7, f"{where}: bad channels or kernel")
        _check(self.stride >= 1 and 0 <= self.pad < k, f"{where}: bad stride/padding")
        self.wbits = np.ascontiguousarray(self.wbits, dtype=np.uint64)
        _check(
            self.wbits.shape == (ceil4(o), ceil4(k * k * words(c))),
            f"{where}: packed weight has shape {self.wbits.shape}",
        )
        self.wpop = np.ascontiguousarray(self.wpop, dtype=np.int32)
        _check(self.wpop.shape == (o, k * k), f"{where}: weight popcounts have a bad shape")
        self.scale = _vec(self.scale, o, f"{where} scale")
        self.bias = _vec(self.bias, o, f"{where} bias")
        if self.shift is not None:
            self.shift = _vec(self.shift, c, f"{where} shift")
        _check(self.shortcut in SHORTCUTS, f"{where}: unknown shortcut {self.shortcut!r}")
        if self.shortcut == "identity":
            _check(c == o and self.stride == 1, f"{where}: identity shortcut changes shape")
        if self.shortcut in ("conv", "avgpool_conv"):
            self.sc_w = np.ascontiguousarray(self.sc_w, dtype=np.float32)
            _check(self.sc_w.shape == (o, c, 1, 1), f"{where}: shortcut weight shape")
            self.sc_b = _vec(self.sc_b, o, f"{where} shortcut bias")
            self._sc_w = torch.from_numpy(self.sc_w).contiguous(memory_format=torch.channels_last)
            self._sc_b = torch.from_numpy(self.sc_b)
        _check(self.sc_stride >= 1, f"{where}: bad shortcut stride")
        self.rprelu = _act_arrays(self.act, self.rprelu, o, where)
        _check(self.out in ("float", "bits"), f"{where}: unknown output {self.out!r}")
        if self.out == "bits":
            _check(
                self.shortcut == "none" and self.act in ("none", "hardtanh"),
                f"{where}: bit output needs no shortcut and a sign-preserving activation",
            )
            self.thr = _vec(self.thr, o, f"{where} thresholds", np.int32)
            self.flip = _vec(self.flip, o, f"{where} flips", np.uint8)

    def meta(self) -> dict[str, Any]:
        keys = ("in_channels", "out_channels", "k", "stride", "pad", "shortcut", "sc_stride")
        return {**{key: getattr(self, key) for key in keys}, "act": self.act, "out": self.out}

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
        t = _nchw(x)
        stride = self.sc_stride
        if self.shortcut == "avgpool_conv" and stride > 1:
            t = F.avg_pool2d(t, stride, stride, ceil_mode=True, count_include_pad=False)
            stride = 1
        t = F.conv2d(t, self._sc_w, self._sc_b, stride)
        return _nhwc(t.contiguous(memory_format=torch.channels_last))

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
            )
            return State(bits=out)
        res = self._residual(st.x) if self.shortcut != "none" else None
        out = np.empty((n, oh, ow, self.out_channels), dtype=np.float32)
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
        )
        return State(x=out)


@dataclass
class MaxPool2(Op):
    """2x2 stride-2 max-pool (floor): on floats, or on sign bits as an AND of negatives."""

    kind: ClassVar[str] = "maxpool2"
    on_bits: bool = False

    def meta(self) -> dict[str, Any]:
        return {"on_bits": bool(self.on_bits)}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def run(self, st: State) -> State:
        if st.bits is not None:
            n, h, w, cw = st.bits.shape
            out = np.empty((n, h // 2, w // 2, cw), dtype=np.uint64)
            _kernels.pool_bits_2x2(st.bits, out)
            return State(bits=out)
        y = F.max_pool2d(_nchw(st.x), 2)
        return State(x=_nhwc(y.contiguous(memory_format=torch.channels_last)))


@dataclass
class Head(Op):
    """``fc(mean_{h,w} x)``: global average pool and the real-valued classifier."""

    kind: ClassVar[str] = "head"
    w: np.ndarray = field(default=None)  # [classes, C]
    b: np.ndarray = field(default=None)  # [classes]

    def __post_init__(self) -> None:
        self.w = np.ascontiguousarray(np.asarray(self.w, dtype=np.float32))
        _check(self.w.ndim == 2 and min(self.w.shape) >= 1, f"{self.name}: bad classifier")
        self.b = _vec(self.b, self.w.shape[0], f"{self.name} bias")
        self._w, self._b = torch.from_numpy(self.w), torch.from_numpy(self.b)

    @property
    def in_channels(self) -> int:
        return self.w.shape[1]

    def meta(self) -> dict[str, Any]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w": self.w, "b": self.b}

    def run(self, st: State) -> State:
        pooled = torch.from_numpy(st.x).mean(dim=(1, 2))
        return State(x=F.linear(pooled, self._w, self._b).numpy())


OP_TYPES: dict[str, type[Op]] = {cls.kind: cls for cls in (FloatConv, BinaryConv, MaxPool2, Head)}
