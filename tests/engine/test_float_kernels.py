"""The engine's float kernels (stem convolution with fused activation, max-pool) against
PyTorch, on every kernel ISA this CPU runs and with one and two threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dwr.engine import _kernels
from dwr.engine.ops import FloatConv, State, dense_layout


def _torch_stem(x, w, b, stride, pad, act, rprelu, pool):
    y = F.conv2d(
        torch.from_numpy(x).permute(0, 3, 1, 2),
        torch.from_numpy(w),
        torch.from_numpy(b),
        stride,
        pad,
    )
    if act == "hardtanh":
        y = F.hardtanh(y)
    elif act == "rprelu":
        a_in, slope, a_out = (torch.from_numpy(v) for v in rprelu)
        y = F.prelu(y + a_in.view(1, -1, 1, 1), slope) + a_out.view(1, -1, 1, 1)
    if pool == "max3":
        y = F.max_pool2d(y, 3, 2, 1)
    elif pool == "max2":
        y = F.max_pool2d(y, 2)
    return y.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("seed", range(3))
def test_float_conv_matches_torch(seed, isa, threads):
    """Random shapes cover every remainder: output widths not multiple of 6 pixels, output
    channels not multiple of 8 or 16, one to 64 input channels, kernels 1 to 7."""
    rng = np.random.default_rng(seed)
    for _ in range(8):
        k = int(rng.choice([1, 3, 5, 7]))
        stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, (k + 1) // 2))
        n, c, o = int(rng.integers(1, 3)), int(rng.choice([1, 3, 5, 64])), int(rng.integers(1, 40))
        h, w = (int(rng.integers(max(2, k - 2 * pad + 1), 20)) for _ in range(2))
        act = str(rng.choice(["none", "hardtanh", "rprelu"]))
        pool = str(rng.choice(["none", "max3", "max2"]))
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        wt = (rng.standard_normal((o, c, k, k)) * 0.3).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        rprelu = tuple(rng.standard_normal(o).astype(np.float32) for _ in range(3))
        rp = rprelu if act == "rprelu" else None
        op = FloatConv("stem", w=wt, b=b, stride=stride, pad=pad, act=act, rprelu=rp, pool=pool)
        oh = (h + 2 * pad - k) // stride + 1
        if pool == "max2" and min(oh, (w + 2 * pad - k) // stride + 1) < 2:
            continue
        got = op.run(State(x=x)).x
        want = _torch_stem(x, wt, b, stride, pad, act, rprelu, pool)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_max_pool_matches_torch(isa, threads):
    x = np.random.default_rng(0).standard_normal((2, 9, 12, 19)).astype(np.float32)
    for k, s, p in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (2, 1, 0)]:
        want = F.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), k, s, p).permute(0, 2, 3, 1)
        out = np.empty(tuple(want.shape), np.float32)
        _kernels.max_pool(x, k, s, p, out)
        np.testing.assert_array_equal(out, want.numpy())


def test_float_kernels_reject_bad_shapes():
    x = np.zeros((1, 8, 8, 3), np.float32)
    w = np.zeros((3, 3, 3, 8), np.float32)
    b = np.zeros(8, np.float32)
    out = np.zeros((1, 8, 8, 5), np.float32)
    _kernels.float_conv(x, w, 5, 1, 1, b, 0, None, None, None, out)
    with pytest.raises(ValueError, match="weight"):
        _kernels.float_conv(
            x, np.ascontiguousarray(w[:, :, :2]), 5, 1, 1, b, 0, None, None, None, out
        )
    with pytest.raises(ValueError, match="output"):
        _kernels.float_conv(x, w, 5, 2, 1, b, 0, None, None, None, out)
    with pytest.raises(ValueError, match="bias"):
        _kernels.float_conv(x, w, 5, 1, 1, b[:5], 0, None, None, None, out)
    with pytest.raises(ValueError, match="RPReLU"):
        _kernels.float_conv(x, w, 5, 1, 1, b, 2, None, None, None, out)
    with pytest.raises(ValueError, match="pooled"):
        _kernels.max_pool(x, 3, 2, 1, np.zeros((1, 3, 3, 3), np.float32))


def test_avg_pool_ceil_matches_torch(isa, threads):
    """Odd sizes: the border windows are cut and average only their own pixels; 13 channels
    exercise the 8-wide vector and the scalar tail."""
    x = np.random.default_rng(1).standard_normal((2, 7, 10, 13)).astype(np.float32)
    for s in (1, 2, 3):
        pool = torch.nn.AvgPool2d(s, s, ceil_mode=True, count_include_pad=False)
        want = pool(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        out = np.empty(want.shape, np.float32)
        _kernels.avg_pool_ceil(x, s, out)
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("c", [5, 21, 64, 83])
def test_pools_are_bit_identical_across_isas(c, each_isa):
    """Every ISA's pools add and compare in the portable order, so their outputs are equal."""
    x = np.random.default_rng(2).standard_normal((1, 11, 9, c)).astype(np.float32)

    def pools():
        m = np.empty((1, 6, 5, c), np.float32)
        _kernels.max_pool(x, 3, 2, 1, m)
        a = np.empty((1, 4, 3, c), np.float32)
        _kernels.avg_pool_ceil(x, 3, a)
        return m, a

    outs = each_isa(pools)
    for name, got in outs.items():
        for mine, ref in zip(got, outs["portable"], strict=True):
            np.testing.assert_array_equal(mine, ref, err_msg=name)


def test_float_conv_reads_nchw_input(isa):
    """The stem reads the model's NCHW input directly; the result equals the NHWC call."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 11, 9)).astype(np.float32)  # NCHW, 5 channels
    w = rng.standard_normal((3, 3, 5, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    want = np.empty((2, 6, 5, 7), np.float32)
    _kernels.float_conv(
        np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, 7, 2, 1, b, 0, None, None, None, want
    )
    got = np.empty_like(want)
    _kernels.float_conv(x, w, 7, 2, 1, b, 0, None, None, None, got, nchw=True)
    np.testing.assert_array_equal(got, want)


def test_dense_matches_torch(isa, threads):
    """The classifier: 70 outputs, a full 64-output block and a padded one."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 37)).astype(np.float32)
    w = rng.standard_normal((70, 37)).astype(np.float32)
    b = rng.standard_normal(70).astype(np.float32)
    wk, bk = dense_layout(w, b)
    assert wk.shape == (2, 37, 64) and bk.shape == (128,)
    out = np.empty((3, 70), np.float32)
    _kernels.dense(x, wk, bk, out)
    want = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="weight"):
        _kernels.dense(x, wk[:1].copy(), bk, out)
    with pytest.raises(ValueError, match="bias"):
        _kernels.dense(x, wk, bk[:70].copy(), out)


def test_dense_is_bit_identical_across_isas(each_isa):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 50)).astype(np.float32)
    wk, bk = dense_layout(
        rng.standard_normal((131, 50)).astype(np.float32),
        rng.standard_normal(131).astype(np.float32),
    )

    def dense():
        out = np.empty((2, 131), np.float32)
        _kernels.dense(x, wk, bk, out)
        return out

    outs = each_isa(dense)
    for name, out in outs.items():
        np.testing.assert_array_equal(out, outs["portable"], err_msg=name)
