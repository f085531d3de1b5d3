"""Exactness of the bit-packed kernels against PyTorch on ±1 tensors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dwr.engine import _kernels
from dwr.engine.compiler import threshold
from dwr.engine.pack import (
    conv_reference,
    pack_bits,
    pack_weight,
    unpack_bits,
    words,
)


def _sign(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t >= 0, 1.0, -1.0)


def _cases(seed: int, n: int):
    rng = np.random.default_rng(seed)
    channels = [1, 3, 63, 64, 65, 127, 130, 200]
    for _ in range(n):
        k = int(rng.choice([1, 3, 3, 3, 5]))
        pad = int(rng.integers(0, min(k, 2)))
        yield (
            int(rng.integers(1, 3)),
            int(rng.choice(channels)),
            int(rng.choice(channels)),
            int(rng.integers(max(1, k - 2 * pad), 10)),
            int(rng.integers(max(1, k - 2 * pad), 10)),
            k,
            int(rng.integers(1, 3)),
            pad,
        )


def _conv_int(x: torch.Tensor, w: torch.Tensor, stride: int, pad: int) -> np.ndarray:
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    bits = np.empty((n, h, wd, words(c)), np.uint64)
    _kernels.pack_signs(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()), None, bits)
    wbits, wpop = pack_weight(w.numpy())
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.empty((n, oh, ow, o), np.int32)
    _kernels.conv_int(bits, wbits, wpop, c, k, stride, pad, out)
    return out.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("seed", range(4))
def test_conv_int_equals_torch(seed, isa, threads):
    for n, c, o, h, w, k, stride, pad in _cases(seed, 12):
        x = torch.randn(n, c, h, w)
        wt = torch.randn(o, c, k, k)
        ref = F.conv2d(_sign(x), _sign(wt), None, stride, pad).round().to(torch.int64)
        got = _conv_int(x, wt, stride, pad)
        case = f"n={n} c={c} o={o} h={h} w={w} k={k} s={stride} p={pad}"
        assert got.shape == tuple(ref.shape), case
        np.testing.assert_array_equal(got, ref.numpy(), err_msg=case)


@pytest.mark.parametrize(
    "c,k",
    [
        (64, 3),  # 9 words a row: two vector steps and one scalar word
        (128, 3),  # 18 words: a 2-word scalar tail
        (192, 3),  # 27 words: a 3-word tail stays in the vector loop
        (64, 1),  # 1 word: scalar only
        (1100, 3),  # 162 words: more than 31 vector steps (flushed byte counters) + tail
        (2048, 3),  # 288 words, no tail, the long path
    ],
)
def test_conv_int_row_tails_and_long_rows(c, k, isa):
    torch.manual_seed(c + k)
    x = torch.randn(1, c, 5, 4)
    wt = torch.randn(6, c, k, k)
    ref = F.conv2d(_sign(x), _sign(wt), None, 1, k // 2).round().to(torch.int64)
    np.testing.assert_array_equal(_conv_int(x, wt, 1, k // 2), ref.numpy())


def test_padding_contributes_zero():
    """All +1 input and weights: corners see 4 taps, edges 6, the interior 9 (times C)."""
    c = 70
    x = torch.ones(1, c, 4, 5)
    w = torch.ones(2, c, 3, 3)
    got = _conv_int(x, w, 1, 1)[0, 0]
    assert got[0, 0] == 4 * c and got[0, 2] == 6 * c and got[1, 2] == 9 * c


def test_prepared_weights_give_the_same_result(isa, threads):
    """The weights a BinaryConv op repacks once for the active ISA equal the per-call repack."""
    x, w = torch.randn(2, 130, 7, 6), torch.randn(9, 130, 3, 3)
    bits = pack_bits(x.permute(0, 2, 3, 1).numpy())
    wbits, wpop = pack_weight(w.numpy())
    a, b = (np.empty((2, 7, 6, 9), np.int32) for _ in range(2))
    _kernels.conv_int(bits, wbits, wpop, 130, 3, 1, 1, a)
    _kernels.conv_int(bits, wbits, wpop, 130, 3, 1, 1, b, wprep=_kernels.prepare_weight(wbits))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a.transpose(0, 3, 1, 2), _conv_int(x, w, 1, 1))
    with pytest.raises(ValueError, match="prepared weight"):
        short = _kernels.prepare_weight(wbits)[:1]
        _kernels.conv_int(bits, wbits, wpop, 130, 3, 1, 1, b, wprep=short)


def test_numpy_reference_matches_torch():
    x, w = torch.randn(2, 5, 6, 7), torch.randn(3, 5, 3, 3)
    ref = F.conv2d(_sign(x), _sign(w), None, 2, 1).round().to(torch.int64).numpy()
    np.testing.assert_array_equal(conv_reference(_sign(x).numpy(), _sign(w).numpy(), 2, 1), ref)


def test_pack_signs_edge_values(isa):
    c = 131
    x = np.random.default_rng(0).standard_normal((3, 4, c)).astype(np.float32)
    x[0, 0, :4] = [0.0, -0.0, np.nan, -np.inf]
    shift = np.random.default_rng(1).standard_normal(c).astype(np.float32)
    for s in (None, shift):
        bits = np.empty((3, 4, words(c)), np.uint64)
        _kernels.pack_signs(x, s, bits)
        v = x if s is None else x + s
        np.testing.assert_array_equal(bits, pack_bits(v))
        expect = torch.where(torch.from_numpy(v) >= 0, 1.0, -1.0).numpy()  # dwr's sign
        np.testing.assert_array_equal(unpack_bits(bits, c), expect)
    assert (pack_bits(x)[..., -1] >> np.uint64(c % 64)).max() == 0  # tail bits stay 0


def test_conv_float_epilogue(isa, threads):
    rng = np.random.default_rng(3)
    n, c, o, h = 2, 67, 70, 6
    x = torch.randn(n, c, h, h)
    w = torch.randn(o, c, 3, 3)
    dot = torch.from_numpy(_conv_int(x, w, 1, 1).astype(np.float32))
    scale, bias = (rng.standard_normal(o).astype(np.float32) for _ in range(2))
    res = rng.standard_normal((n, h, h, o)).astype(np.float32)
    a_in, slope, a_out = (rng.standard_normal(o).astype(np.float32) for _ in range(3))
    bits = pack_bits(x.permute(0, 2, 3, 1).numpy())
    wbits, wpop = pack_weight(w.numpy())
    y = dot * torch.from_numpy(scale).view(1, -1, 1, 1) + torch.from_numpy(bias).view(1, -1, 1, 1)
    y = y + torch.from_numpy(res).permute(0, 3, 1, 2)
    expect = {
        0: y,
        1: F.hardtanh(y),
        2: F.prelu(y + torch.from_numpy(a_in).view(1, -1, 1, 1), torch.from_numpy(slope))
        + torch.from_numpy(a_out).view(1, -1, 1, 1),
    }
    for act, ref in expect.items():
        out = np.empty((n, h, h, o), np.float32)
        _kernels.conv_float(
            bits, wbits, wpop, c, 3, 1, 1, scale, bias, res, act, a_in, slope, a_out, out
        )
        np.testing.assert_allclose(out.transpose(0, 3, 1, 2), ref.numpy(), rtol=1e-5, atol=1e-4)


def test_conv_bits_threshold(threads):
    rng = np.random.default_rng(5)
    n, c, o, h = 1, 100, 77, 7
    x, w = torch.randn(n, c, h, h), torch.randn(o, c, 3, 3)
    dot = _conv_int(x, w, 2, 1).astype(np.float64)
    scale = rng.standard_normal(o) * 0.01
    scale[:3] = [0.0, 0.0, -0.0]
    bias = rng.standard_normal(o) * 0.5
    bias[:2] = [0.3, -0.3]
    thr, flip = threshold(scale, bias)
    wbits, wpop = pack_weight(w.numpy())
    out = np.empty((n, 4, 4, words(o)), np.uint64)
    _kernels.conv_bits(
        pack_bits(x.permute(0, 2, 3, 1).numpy()), wbits, wpop, c, 3, 2, 1, thr, flip, out
    )
    y = scale.reshape(1, -1, 1, 1) * dot + bias.reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(out, pack_bits(y.transpose(0, 2, 3, 1)))


def test_threshold_exact_on_integers():
    rng = np.random.default_rng(9)
    scale = rng.standard_normal(400) * rng.choice([1e-3, 1, 50], 400)
    bias = np.round(rng.standard_normal(400) * 20) * np.where(rng.random(400) < 0.5, scale, 1)
    thr, flip = threshold(scale, bias)
    dots = np.arange(-300, 301)
    for s, b, t, f in zip(scale.tolist(), bias.tolist(), thr, flip, strict=True):
        want = [Fraction(s) * d + Fraction(b) >= 0 for d in dots.tolist()]  # exact, ties too
        got = dots <= t if f else dots >= t
        np.testing.assert_array_equal(got, want)


def test_pool_bits_is_and_of_negatives():
    x = np.random.default_rng(2).standard_normal((2, 5, 7, 90)).astype(np.float32)
    pooled = F.max_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    out = np.empty((2, 2, 3, 2), np.uint64)
    _kernels.pool_bits_2x2(pack_bits(x), out)
    np.testing.assert_array_equal(out, pack_bits(pooled.numpy()))


def test_kernels_reject_bad_shapes():
    bits = np.zeros((1, 4, 4, 1), np.uint64)
    wbits, wpop = pack_weight(np.ones((8, 64, 3, 3), np.float32))
    out = np.zeros((1, 4, 4, 8), np.int32)
    with pytest.raises(ValueError):
        _kernels.conv_int(bits, wbits, wpop, 65, 3, 1, 1, out)  # 65 channels need 2 words
    with pytest.raises(ValueError):
        _kernels.conv_int(bits, wbits[:1], wpop, 64, 3, 1, 1, out)  # 4 of 8 outputs
    with pytest.raises(ValueError):
        _kernels.conv_int(bits, wbits, wpop, 64, 3, 1, 1, np.zeros((1, 3, 4, 8), np.int32))
    with pytest.raises(ValueError):
        _kernels.conv_int(bits, wbits, wpop, 64, 3, 1, 3, out)  # padding >= kernel
    with pytest.raises(ValueError):
        _kernels.conv_int(bits, wbits, np.zeros((8, 81), np.int32), 64, 9, 1, 1, out)
    with pytest.raises(TypeError):
        _kernels.conv_int(bits.astype(np.int64), wbits, wpop, 64, 3, 1, 1, out)
    assert _kernels.isa() in _kernels.isas() and "portable" in _kernels.isas()


def test_output_slices_equal_one_thread(isa):
    """With several threads, a layer with large weights on few pixels splits its outputs into
    64-channel slices (each task streams part of the weights): every output mode equals the
    one-thread result, including a last slice cut short (200 outputs)."""
    rng = np.random.default_rng(11)
    n, c, o, h = 1, 300, 200, 5
    x, w = torch.randn(n, c, h, h), torch.randn(o, c, 3, 3)
    bits = pack_bits(x.permute(0, 2, 3, 1).numpy())
    wbits, wpop = pack_weight(w.numpy())
    scale, bias = (rng.standard_normal(o).astype(np.float32) for _ in range(2))
    res = rng.standard_normal((n, h, h, o)).astype(np.float32)
    a_in, slope, a_out = (rng.standard_normal(o).astype(np.float32) for _ in range(3))
    thr, flip = threshold(scale.astype(np.float64) * 0.01, bias.astype(np.float64))

    def run() -> list[np.ndarray]:
        ints = np.empty((n, h, h, o), np.int32)
        _kernels.conv_int(bits, wbits, wpop, c, 3, 1, 1, ints)
        floats = np.empty((n, h, h, o), np.float32)
        _kernels.conv_float(
            bits, wbits, wpop, c, 3, 1, 1, scale, bias, res, 2, a_in, slope, a_out, floats
        )
        signs = np.empty((n, h, h, words(o)), np.uint64)
        _kernels.conv_bits(bits, wbits, wpop, c, 3, 1, 1, thr, flip, signs)
        return [ints, floats, signs]

    try:
        _kernels.set_num_threads(1)
        one = run()
        _kernels.set_num_threads(2)
        two = run()
    finally:
        _kernels.set_num_threads(1)
    np.testing.assert_array_equal(one[0].transpose(0, 3, 1, 2), _conv_int(x, w, 1, 1))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("o", [5, 64, 70, 200])
def test_conv_float_packs_the_next_input(o, isa, threads):
    """With next_bits, the float epilogue also packs sign(out + next_shift): bit-identical to
    pack_signs on its own output (channel tails, 64-channel slices with 2 threads)."""
    rng = np.random.default_rng(o)
    n, c, h = 1, 300, 5
    x, w = torch.randn(n, c, h, h), torch.randn(o, c, 3, 3)
    bits = pack_bits(x.permute(0, 2, 3, 1).numpy())
    wbits, wpop = pack_weight(w.numpy())
    scale = (rng.standard_normal(o) * 0.02).astype(np.float32)
    bias, a_in, slope, a_out = (rng.standard_normal(o).astype(np.float32) for _ in range(4))
    res = rng.standard_normal((n, h, h, o)).astype(np.float32)
    shift = rng.standard_normal(o).astype(np.float32)

    def conv(act: int, out: np.ndarray, **packing) -> None:
        _kernels.conv_float(bits, wbits, wpop, c, 3, 1, 1, scale, bias, res, act,
                            a_in, slope, a_out, out, **packing)  # fmt: skip

    out = np.empty((n, h, h, o), np.float32)
    for act in (0, 2):
        for s in (None, shift):
            packed = np.full((n, h, h, words(o)), 0xFFFF, np.uint64)  # stale bits must go
            conv(act, out, next_bits=packed, next_shift=s)
            want = np.empty_like(packed)
            _kernels.pack_signs(out, s, want)
            np.testing.assert_array_equal(packed, want, err_msg=f"act={act} shift={s is not None}")
    with pytest.raises(ValueError, match="next_bits"):
        conv(0, out, next_shift=shift)


@pytest.mark.parametrize("o", [1, 5, 31, 62, 125, 131])
def test_channel_tails_are_bit_identical_to_the_portable_kernel(o, threads, each_isa):
    """Widths that are not a multiple of the vector width end in a partial group of channels,
    which the vector epilogues run with masked loads and stores: outputs and packed next
    inputs must equal the portable kernel's to the bit, for every activation, with a residual
    and an RSign shift."""
    rng = np.random.default_rng(100 + o)
    n, c, h = 1, 70, 7
    x, w = torch.randn(n, c, h, h), torch.randn(o, c, 3, 3)
    bits = pack_bits(x.permute(0, 2, 3, 1).numpy())
    wbits, wpop = pack_weight(w.numpy())
    scale = (rng.standard_normal(o) * 0.05).astype(np.float32)
    bias, a_in, slope, a_out, shift = (rng.standard_normal(o).astype(np.float32) for _ in range(5))
    res = rng.standard_normal((n, h, h, o)).astype(np.float32)

    def run(act: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.full((n, h, h, o), np.nan, np.float32)
        packed = np.full((n, h, h, words(o)), 0xFFFF, np.uint64)
        _kernels.conv_float(bits, wbits, wpop, c, 3, 1, 1, scale, bias, res, act, a_in, slope,
                            a_out, out, next_bits=packed, next_shift=shift)  # fmt: skip
        return out, packed

    for act in (0, 1, 2):
        runs = each_isa(lambda act=act: run(act))
        for name, got in runs.items():
            assert not np.isnan(got[0]).any()  # every channel written, none past the end
            np.testing.assert_array_equal(got[0], runs["portable"][0], err_msg=f"{name} {act}")
            np.testing.assert_array_equal(got[1], runs["portable"][1], err_msg=f"{name} {act}")


def test_isa_choice_by_name_and_environment():
    """set_isa takes the ISAs this CPU runs (DwrError otherwise); DWR_ISA forces the choice
    at load, and a name this CPU cannot run stops the import with one clear line."""
    import os
    import subprocess
    import sys

    import dwr.engine as engine
    from dwr.errors import DwrError

    with pytest.raises(DwrError, match="not one this CPU runs"):
        engine.set_isa("no_such_isa")
    code = "import dwr.engine as e; print(e.kernel_isa())"
    for name in _kernels.isas():
        env = {**os.environ, "DWR_ISA": name}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == name, out.stderr
    env = {**os.environ, "DWR_ISA": "no_such_isa"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "DWR_ISA='no_such_isa' is unknown" in out.stderr
