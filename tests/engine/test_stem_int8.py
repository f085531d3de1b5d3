"""The opt-in int8 stem (``convert(..., stem_precision="int8")``, ``--stem-precision int8``).

int8 math: per-output-channel weights ``wq = round(w / s_w)``, ``s_w = max|w_o| / 127``; each
image ``xq = round(x / s_x)``, ``s_x = max|x| / 127`` (to nearest even, in [-127, 127], padding
0); the int32 dot product is exact, then ``float(dot) * (s_x * s_w) + b`` and the activation,
each op rounded once in f32. The reference below does the same in NumPy (the integer conv in
float64, exact at these sizes), so every ISA must match it, and each other, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import random_model, run_stem
from test_files_and_errors import _repack, _split

import dwr.engine as engine
import dwr.engine.compiled as compiled
from dwr.engine import _kernels
from dwr.engine.compiled import _PREFIX
from dwr.engine.compiler import compile_ops
from dwr.engine.ops import POOL_GEOMETRY, FloatConv, quantize_int8
from dwr.errors import DwrError
from dwr.lowering import lower

F32 = np.float32


def quantized_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(wq, s_w)`` computed here, not by the engine's code."""
    s = (np.abs(w).reshape(len(w), -1).max(axis=1) / F32(127)).astype(F32)
    q = np.zeros_like(w)
    nz = s > 0
    q[nz] = np.clip(np.rint(w[nz] / s[nz, None, None, None]), -127, 127)
    return q, s


def reference(op: FloatConv, x: np.ndarray) -> np.ndarray:
    """The int8 stem of NCHW ``x`` in NumPy, NHWC, bit for bit what the engine must give."""
    wq, sw = quantized_weights(op.w)
    out = []
    for img in x:
        sx = F32(np.abs(img).max()) / F32(127)
        xq = np.clip(np.rint(img / sx), -127, 127) if sx > 0 else np.zeros_like(img)
        dot = F.conv2d(torch.from_numpy(xq[None]).double(), torch.from_numpy(wq).double(),
                       stride=op.stride, padding=op.pad)[0].numpy()  # fmt: skip
        assert np.abs(dot).max() < 2**24 and np.array_equal(dot, np.round(dot))
        scale = (sx * sw).astype(F32)[:, None, None]
        y = dot.astype(F32) * scale + op.b[:, None, None]
        out.append(activate(op, y))
    y = torch.from_numpy(np.stack(out))
    if op.pool != "none":
        y = F.max_pool2d(y, *POOL_GEOMETRY[op.pool])
    return y.permute(0, 2, 3, 1).numpy()


def activate(op: FloatConv, y: np.ndarray) -> np.ndarray:
    """The engine's activations in its order of f32 operations."""
    if op.act == "hardtanh":
        return np.clip(y, F32(-1), F32(1))
    if op.act == "rprelu":
        shift_in, slope, shift_out = (v[:, None, None] for v in op.rprelu)
        t = y + shift_in
        return np.where(t >= 0, t, slope * t) + shift_out
    return y


def random_stem(case: int) -> tuple[FloatConv, np.ndarray, bool]:
    """An int8 stem of random shape (every tile remainder, k*C of every residue mod 4, masked
    channel tails), its NCHW input and whether the op reads it as NCHW or NHWC."""
    rng = np.random.default_rng(100 + case)
    k = int(rng.choice([1, 2, 3, 5, 7]))
    c, o = int(rng.integers(1, 6)), int(rng.choice([1, 5, 8, 16, 17, 33, 64, 70]))
    stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, k // 2 + 1))
    act = ["none", "hardtanh", "rprelu"][case % 3]
    rprelu = None
    if act == "rprelu":
        rprelu = (rng.normal(0, 0.3, o), rng.uniform(0, 0.5, o), rng.normal(0, 0.3, o))
    w = rng.normal(0, 0.3, (o, c, k, k))
    if case % 5 == 4:
        w[0] = 0  # a dead channel: s_w = 0
    op = FloatConv(
        "stem", w=w, b=rng.normal(0, 0.3, o), stride=stride, pad=pad, act=act, rprelu=rprelu,
        pool=["none", "max3", "max2"][case % 3 if case % 2 else 0], precision="int8",
    )  # fmt: skip
    n = int(rng.integers(1, 4))
    x = rng.normal(0, 1.0, (n, c, *rng.integers(k + 6, 30, 2))) * rng.uniform(0.1, 10, (n, 1, 1, 1))
    return op, x.astype(F32), case % 4 != 3


@pytest.mark.parametrize("case", range(30))
def test_int8_stem_equals_the_numpy_reference_bit_for_bit_on_every_isa(case, each_isa):
    op, x, nchw = random_stem(case)
    ref = reference(op, x)
    for isa, y in each_isa(lambda: run_stem(op, x, nchw)).items():
        assert np.array_equal(y, ref), f"{isa}: max diff {np.abs(y - ref).max():.3g}"


def test_ties_round_to_even_and_zero_images_give_the_bias(each_isa):
    """max|x| = 127 makes s_x = 1, so x = 2.5 quantizes to 2 and -0.5 to 0; an all-zero
    image has s_x = 0 and outputs act(b)."""
    rng = np.random.default_rng(3)
    op = FloatConv("stem", w=rng.normal(0, 1, (9, 2, 3, 3)), b=rng.normal(0, 1, 9), pad=1,
                   precision="int8")  # fmt: skip
    x = rng.integers(-8, 8, (3, 2, 9, 9)).astype(F32) + F32(0.5)
    x[0, 0, 0, 0], x[1] = 127, 0
    ref = reference(op, x)
    assert np.array_equal(ref[1], np.broadcast_to(op.b, ref[1].shape))
    for isa, y in each_isa(lambda: run_stem(op, x, True)).items():
        assert np.array_equal(y, ref), isa


def test_each_image_has_its_own_scale():
    """An image's output does not depend on the others in its batch."""
    op, x, _ = random_stem(5)
    x = np.concatenate([x, 100 * x])
    alone = np.concatenate([run_stem(op, img[None], True) for img in x])
    assert np.array_equal(run_stem(op, x, True), alone)


def test_weights_are_quantized_per_output_channel():
    w = np.random.default_rng(0).normal(0, 1, (12, 3, 7, 7)).astype(F32)
    w[3] = 0
    wq, s = quantize_int8(w)
    ref_q, ref_s = quantized_weights(w)
    assert wq.dtype == np.int8 and np.array_equal(wq, ref_q) and np.array_equal(s, ref_s)
    assert np.abs(wq).reshape(12, -1).max(axis=1).tolist() == [127] * 3 + [0] + [127] * 8


def test_native_int8_kernel_only_where_the_table_and_the_cpu_have_one(each_isa):
    native = each_isa(_kernels.int8_native)
    assert not any(native[isa] for isa in native if isa != "avx512")
    cpuinfo = "/proc/cpuinfo"
    if "avx512" in native:
        assert native["avx512"] == (" avx512_vnni" in open(cpuinfo).read())


def test_int8_stem_threads_split_rows_only(threads, isa):
    op, x, nchw = random_stem(7)
    y = run_stem(op, x, nchw)
    _kernels.set_num_threads(1)
    assert np.array_equal(y, run_stem(op, x, nchw))


def test_whole_models_agree_across_isas_and_stay_close_to_f32(each_isa):
    model = random_model("resnet20_cifar")
    comp = engine.convert(model, stem_precision="int8")
    assert comp.stem_precision == "int8"
    assert np.array_equal(comp.ops[0].w, compile_ops(lower(model))[0].w)  # stored as floats
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(F32)
    got = each_isa(lambda: comp(x))
    for isa, y in got.items():
        assert np.array_equal(y, got["portable"]), isa


def test_save_and_load_keep_the_precision(tmp_path):
    model = random_model("resnet20_cifar")
    comp = engine.convert(model, stem_precision="int8")
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(F32)
    comp.save(tmp_path / "int8.dwre")
    blob = (tmp_path / "int8.dwre").read_bytes()
    assert _PREFIX.unpack_from(blob)[1] == 5 and b'"precision": "int8"' in blob
    loaded = engine.load(tmp_path / "int8.dwre")
    assert loaded.stem_precision == "int8" and loaded.format_version == 5
    assert np.array_equal(loaded(x), comp(x))
    for precision, version in (("f32", 3), ("bf16", 4)):  # unchanged by int8
        engine.convert(model, stem_precision=precision).save(tmp_path / "m.dwre")
        assert _PREFIX.unpack_from((tmp_path / "m.dwre").read_bytes())[1] == version


def test_a_reader_of_format_4_refuses_an_int8_file(tmp_path, monkeypatch):
    """An older dwr (at most format 4) refuses the file as newer instead of running it."""
    engine.convert(random_model("resnet20_cifar"), stem_precision="int8").save(tmp_path / "m.dwre")
    monkeypatch.setattr(compiled, "FORMAT_VERSION", 4)
    with pytest.raises(DwrError, match="written by a newer dwr") as e:
        engine.load(tmp_path / "m.dwre")
    assert "\n" not in str(e.value)


def test_an_int8_key_in_an_older_format_is_still_read(tmp_path):
    """The precision key decides, as for bf16 (a hand-edited or future file)."""
    path = tmp_path / "m.dwre"
    engine.convert(random_model("resnet20_cifar"), stem_precision="int8").save(path)
    head, payload = _split(path.read_bytes())
    path.write_bytes(_repack(head, payload, version=4))
    assert engine.load(path).stem_precision == "int8"


def test_bad_precision_is_one_dwr_error_line():
    model = random_model("resnet20_cifar")
    for bad in ("int4", "INT8", "i8"):
        with pytest.raises(DwrError, match="stem precision must be one of f32, bf16, int8") as e:
            engine.convert(model, stem_precision=bad)
        assert "\n" not in str(e.value)


def test_an_int8_stem_too_wide_for_int32_sums_is_refused():
    with pytest.raises(DwrError, match="must fit in int32") as e:
        FloatConv("stem", w=np.ones((1, 2800, 7, 7)), b=np.zeros(1), precision="int8")
    assert "\n" not in str(e.value)
    FloatConv("stem", w=np.ones((1, 2800, 7, 7)), b=np.zeros(1))  # f32 has no such limit
