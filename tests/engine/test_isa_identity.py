"""Every kernel table this CPU runs is bit-identical to the portable one: binary conv outputs
(int, float with every activation, residual and the next input packed after an RSign shift,
bits through thresholds) over widths 1-1100, strides 1 and 2, every padding."""

from __future__ import annotations

import numpy as np
import pytest

from dwr.engine import _kernels
from dwr.engine.pack import pack_bits, pack_weight, words

# in/out widths around every vector width (8, 16, 32 outputs; 64-bit words) and long rows
WIDTHS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 129, 200, 257, 513, 1100]


def _cases():
    rng = np.random.default_rng(7)
    for i, o in enumerate(WIDTHS):
        c = WIDTHS[(i * 7 + 3) % len(WIDTHS)]
        for k, stride in [(3, 1), (3, 2), (1, 1), (1, 2), (5, 2)]:
            pad = int(rng.integers(0, k))
            yield c, o, k, stride, pad


def _layer(c: int, o: int, k: int, stride: int, pad: int):
    rng = np.random.default_rng(c * 1000 + o)
    side = max(k - 2 * pad, 1) + 4
    x = rng.standard_normal((1, side, side + 1, c)).astype(np.float32)
    wbits, wpop = pack_weight(rng.standard_normal((o, c, k, k)).astype(np.float32))
    oh, ow = (side + 2 * pad - k) // stride + 1, (side + 1 + 2 * pad - k) // stride + 1
    vec = [rng.standard_normal(o).astype(np.float32) for _ in range(6)]
    vec[0] *= 0.05  # scale: keep y around the activation's knees
    res = rng.standard_normal((1, oh, ow, o)).astype(np.float32)
    thr = rng.integers(-k * k * c, k * k * c, o).astype(np.int32)
    flip = (rng.random(o) < 0.3).astype(np.uint8)
    return pack_bits(x), wbits, wpop, (oh, ow), vec, res, thr, flip


def _run_all(c, o, k, stride, pad) -> list[np.ndarray]:
    bits, wbits, wpop, (oh, ow), vec, res, thr, flip = _layer(c, o, k, stride, pad)
    scale, bias, a_in, slope, a_out, shift = vec
    geom = (c, k, stride, pad)
    outs = []
    out = np.empty((1, oh, ow, o), np.int32)
    _kernels.conv_int(bits, wbits, wpop, *geom, out)
    outs.append(out)
    for act in (0, 1, 2):
        for r in (None, res):
            y = np.full((1, oh, ow, o), np.nan, np.float32)
            nxt = np.full((1, oh, ow, words(o)), 0xFFFF, np.uint64)
            _kernels.conv_float(bits, wbits, wpop, *geom, scale, bias, r, act, a_in, slope,
                                a_out, y, next_bits=nxt, next_shift=shift)  # fmt: skip
            outs += [y, nxt]
    b = np.empty((1, oh, ow, words(o)), np.uint64)
    _kernels.conv_bits(bits, wbits, wpop, *geom, thr, flip, b)
    outs.append(b)
    return outs


@pytest.mark.skipif(len(_kernels.isas()) < 2, reason="only the portable kernels run here")
@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: "c{}-o{}-k{}-s{}-p{}".format(*c))
def test_every_isa_equals_portable(case, each_isa, threads):
    runs = each_isa(lambda: _run_all(*case))
    for name, outs in runs.items():
        for j, (got, want) in enumerate(zip(outs, runs["portable"], strict=True)):
            assert not (got.dtype == np.float32 and np.isnan(got).any()), f"{name} output {j}"
            np.testing.assert_array_equal(got, want, err_msg=f"{name}, output {j}")
