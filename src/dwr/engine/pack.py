"""Bit packing (numpy reference; the engine's own layout).

A value v becomes bit ``1`` where ``not (v >= 0)`` (sign -1; sign maps 0 to +1), ``0`` where
it is +1. Channels are packed along the last axis, bit ``c % 64`` of word ``c // 64``; bits
past the channel count are 0 in activations and weights alike, so they never mismatch.

For ±1 vectors x, w of length C packed this way: ``x . w = C - 2 * popcount(x XOR w)``.

Weights of a k x k conv are packed as im2col rows ``[O][tap][word]`` (tap = ky * k + kx, ``K =
k*k*words`` words a row), padded with zero rows to ``Op = ceil4(O)`` and stored in *lane
layout* ``[Op/4][K][4]``: word k of outputs 4g..4g+3 side by side, so one 256-bit XOR of a
broadcast input word serves four output channels. ``wpop[o, t]`` is the popcount of tap t.
"""

from __future__ import annotations

import numpy as np


def words(channels: int) -> int:
    """64-bit words per pixel for ``channels`` channels."""
    return (channels + 63) // 64


def ceil4(n: int) -> int:
    return (n + 3) // 4 * 4


def pack_bits(x: np.ndarray) -> np.ndarray:
    """Pack ``!(x >= 0)`` along the last axis: shape ``(..., C) -> (..., ceil(C/64))`` uint64."""
    x = np.asarray(x)
    c = x.shape[-1]
    neg = ~(x >= 0)
    pad = words(c) * 64 - c
    if pad:
        neg = np.concatenate([neg, np.zeros(neg.shape[:-1] + (pad,), dtype=bool)], axis=-1)
    packed = np.packbits(neg, axis=-1, bitorder="little")  # (..., 8 * words) bytes
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_bits(bits: np.ndarray, channels: int) -> np.ndarray:
    """Inverse of :func:`pack_bits` to ±1 float32 values."""
    b = np.ascontiguousarray(bits.astype("<u8", copy=False)).view(np.uint8)
    neg = np.unpackbits(b, axis=-1, bitorder="little")[..., :channels]
    return np.where(neg == 1, -1.0, 1.0).astype(np.float32)


def popcount(a: np.ndarray) -> np.ndarray:
    """Bit count of every uint64 element."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(a).astype(np.int64)
    b = np.ascontiguousarray(a.astype("<u8", copy=False)).view(np.uint8)
    return np.unpackbits(b, axis=-1).reshape(a.shape + (64,)).sum(-1).astype(np.int64)


def pack_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signs of an ``[O, C, k, k]`` weight -> ``(wbits [Op/4, K, 4] uint64, wpop [O, k*k]
    int32)`` with ``wbits`` in lane layout (see the module docstring)."""
    o, c, kh, kw = w.shape
    taps = np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1))).reshape(o, kh * kw, c)
    bits = pack_bits(taps)  # [O, T, Cw]
    wpop = popcount(bits).sum(-1).astype(np.int32)
    rows = np.zeros((ceil4(o), kh * kw * words(c)), dtype=np.uint64)
    rows[:o] = bits.reshape(o, -1)
    return lanes_from_rows(rows), wpop


def lanes_from_rows(rows: np.ndarray) -> np.ndarray:
    """``[Op, K]`` weight rows (Op a multiple of 4) -> lane layout ``[Op/4, K, 4]``."""
    op, k = rows.shape
    return np.ascontiguousarray(rows.reshape(op // 4, 4, k).transpose(0, 2, 1))


def conv_reference(x_pm: np.ndarray, w_pm: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Integer conv of ±1 NCHW ``x_pm`` with ±1 ``w_pm``, zero padding (test oracle)."""
    n, c, h, wd = x_pm.shape
    o, _, k, _ = w_pm.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=np.int64)
    xp[:, :, pad : pad + h, pad : pad + wd] = x_pm
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, o, oh, ow), dtype=np.int64)
    wi = w_pm.astype(np.int64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, :, ky : ky + stride * oh : stride, kx : kx + stride * ow : stride]
            out += np.einsum("nchw,oc->nohw", patch, wi[:, :, ky, kx])
    return out
