"""The opt-in bf16 stem (``convert(..., stem_precision="bf16")``, ``--stem-precision``).

bf16 math: weights rounded to bf16 once at convert time, the input at run time, and the
products (exact in f32) summed in f32. Each ISA sums in its own order (VDPBF16PS adds tap
pairs; the others run their f32 kernel on the rounded values), so the tolerance is the
standard bound of an f32 sum of K = C*k*k products: per output, |engine - reference| <=
(K + 8) * 2^-24 * (sum |x * w| + |bias| + |RPReLU vectors|), against a float64 reference of
the bf16-rounded operands; two ISAs then agree to twice that. The default f32 stem is the
code it was, bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_helpers import random_model, run_stem
from test_files_and_errors import _repack, _split

import dwr.engine as engine
from dwr.cli.main import main
from dwr.cli.options import STEM_PRECISIONS as CLI_PRECISIONS
from dwr.engine import Preprocess, _kernels
from dwr.engine.compiled import _PREFIX, CompiledModel
from dwr.engine.compiler import compile_ops
from dwr.engine.ops import POOL_GEOMETRY, STEM_PRECISIONS, FloatConv, State
from dwr.errors import DwrError
from dwr.lowering import lower

U = 2.0**-24  # f32 unit roundoff


def bf16(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to bf16 by PyTorch (to nearest, ties to even): not the engine's code."""
    return torch.from_numpy(np.asarray(a, np.float32)).to(torch.bfloat16).float().numpy()


def reference(op: FloatConv, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The op's output on NCHW ``x`` in float64 from bf16-rounded input and weights (NHWC),
    and the error bound of an f32 engine at each output."""
    xr, w = torch.from_numpy(bf16(x)).double(), torch.from_numpy(bf16(op.w)).double()
    b = torch.from_numpy(op.b).double()
    y = F.conv2d(xr, w, b, stride=op.stride, padding=op.pad)
    scale = F.conv2d(xr.abs(), w.abs(), b.abs(), stride=op.stride, padding=op.pad)
    if op.act == "hardtanh":
        y = y.clamp(-1, 1)
    elif op.act == "rprelu":
        shift_in, slope, shift_out = (
            torch.from_numpy(v).double()[:, None, None] for v in op.rprelu
        )
        t = y + shift_in
        y = torch.where(t >= 0, t, slope * t) + shift_out
        scale = scale + shift_in.abs() + shift_out.abs()
    bound = (op.w[0].size + 8) * U * scale
    if op.pool != "none":  # |max(a) - max(b)| <= max |a - b|: pool the bound too
        k, s, p = POOL_GEOMETRY[op.pool]
        y = F.max_pool2d(y, k, s, p)
        bound = F.max_pool2d(bound, k, s, p)
    return y.permute(0, 2, 3, 1).numpy(), bound.permute(0, 2, 3, 1).numpy()


def random_stem(case: int) -> tuple[FloatConv, np.ndarray, bool]:
    """A bf16 stem of random shape (every tile remainder, odd and even k*C, masked channel
    tails), its NCHW input and whether the op reads it as NCHW (the model's input) or NHWC."""
    rng = np.random.default_rng(case)
    k = int(rng.choice([1, 2, 3, 5, 7]))
    c, o = int(rng.integers(1, 6)), int(rng.choice([1, 5, 8, 16, 17, 33, 64, 70]))
    stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, k // 2 + 1))
    act = ["none", "hardtanh", "rprelu"][case % 3]
    rprelu = None
    if act == "rprelu":
        rprelu = (rng.normal(0, 0.3, o), rng.uniform(0, 0.5, o), rng.normal(0, 0.3, o))
    op = FloatConv(
        "stem",
        w=rng.normal(0, 0.3, (o, c, k, k)),
        b=rng.normal(0, 0.3, o),
        stride=stride,
        pad=pad,
        act=act,
        rprelu=rprelu,
        pool=["none", "max3", "max2"][case % 3 if case % 2 else 0],
        precision="bf16",
    )
    x = rng.normal(0, 1.0, (int(rng.integers(1, 3)), c, *rng.integers(k + 6, 30, 2)))
    return op, x.astype(np.float32), case % 4 != 3


@pytest.mark.parametrize("case", range(30))
def test_bf16_stem_matches_a_float64_bf16_reference_on_every_isa(case, each_isa):
    op, x, nchw = random_stem(case)
    ref, bound = reference(op, x)
    got = each_isa(lambda: run_stem(op, x, nchw))
    for isa, y in got.items():
        excess = np.abs(y - ref) - bound
        assert excess.max() <= 0, f"{isa}: {excess.max():.3g} past the bound"
        assert (np.abs(y - got["portable"]) <= 2 * bound).all(), isa


def test_native_bf16_kernel_only_where_the_table_and_the_cpu_have_one(each_isa):
    native = each_isa(_kernels.bf16_native)
    assert not any(native[isa] for isa in native if isa != "avx512")
    cpuinfo = Path("/proc/cpuinfo")
    if "avx512" in native and cpuinfo.exists():
        assert native["avx512"] == (" avx512_bf16" in cpuinfo.read_text())


def test_bf16_weights_are_rounded_once_at_convert_time():
    model = random_model("resnet20_cifar")
    f32 = compile_ops(lower(model))[0].w
    stem = engine.convert(model, stem_precision="bf16").ops[0]
    assert stem.precision == "bf16" and np.array_equal(stem.w, bf16(f32))
    assert not (stem.w.view(np.uint32) & 0xFFFF).any()  # bf16 values, stored as float32
    again = stem.with_precision("bf16")  # rounding a rounded weight changes nothing
    assert np.array_equal(again.w, stem.w)


def test_default_stem_is_f32_and_unchanged(tmp_path):
    """No stem_precision means f32: the plan's weights, the f32 kernel (the same call as
    before the option existed), format-3 files without a precision key."""
    model = random_model("resnet20_cifar")
    default, f32 = engine.convert(model), engine.convert(model, stem_precision="f32")
    plan = compile_ops(lower(model))[0]
    assert default.stem_precision == "f32" and np.array_equal(default.ops[0].w, plan.w)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert np.array_equal(default(x), f32(x))
    stem = default.ops[0]
    before = np.empty_like(stem.run(State(x=x, nchw=True)).x)
    _kernels.float_conv(x, stem._wk, 16, 1, 1, stem._bk, 0, None, None, None, before, nchw=True)
    if stem.act == "none" and stem.pool == "none":  # resnet20_cifar's stem: conv + BN
        assert np.array_equal(stem.run(State(x=x, nchw=True)).x, before)
    default.save(tmp_path / "f32.dwre")
    blob = (tmp_path / "f32.dwre").read_bytes()
    assert _PREFIX.unpack_from(blob)[1] == 3 and b'"precision"' not in blob
    assert (
        engine.convert(model, stem_precision="bf16").ops[0].run(State(x=x, nchw=True)).x.tobytes()
        != before.tobytes()
    )


def test_save_and_load_keep_the_precision(tmp_path):
    model = random_model("resnet20_cifar")
    comp = engine.convert(model, stem_precision="bf16")
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    comp.save(tmp_path / "bf16.dwre")
    blob = (tmp_path / "bf16.dwre").read_bytes()
    assert _PREFIX.unpack_from(blob)[1] == 4  # an older dwr refuses it, not runs it in f32
    loaded = engine.load(tmp_path / "bf16.dwre")
    assert loaded.stem_precision == "bf16" and loaded.format_version == 4
    assert np.array_equal(loaded(x), comp(x))
    assert engine.load(_saved(engine.convert(model), tmp_path)).stem_precision == "f32"


def test_a_stem_without_a_precision_loads_as_f32(tmp_path):
    """A format-3 file (written before the option, or by it for an f32 stem) has no key."""
    path = _saved(engine.convert(random_model("resnet20_cifar"), stem_precision="bf16"), tmp_path)
    head, payload = _split(path.read_bytes())
    del head["ops"][0]["meta"]["precision"]
    path.write_bytes(_repack(head, payload, version=3))
    assert engine.load(path).stem_precision == "f32"


def test_bf16_stem_threads_split_rows_only(threads, isa):
    """Rows are tasks: any thread count gives the one-thread output to the bit."""
    op, x, nchw = random_stem(7)
    y = run_stem(op, x, nchw)
    _kernels.set_num_threads(1)
    assert np.array_equal(y, run_stem(op, x, nchw))


def _saved(comp: CompiledModel, tmp_path: Path) -> Path:
    comp.save(tmp_path / "m.dwre")
    return tmp_path / "m.dwre"


def test_bad_precision_is_one_dwr_error_line(tmp_path):
    model = random_model("resnet20_cifar")
    for bad in ("int4", "BF16", "", None, 16):
        with pytest.raises(DwrError, match="stem precision must be one of f32, bf16, int8") as e:
            engine.convert(model, stem_precision=bad)
        assert "\n" not in str(e.value)
    path = _saved(engine.convert(model, stem_precision="bf16"), tmp_path)
    header = path.read_bytes()[_PREFIX.size :]
    assert b'"precision": "bf16"' in header
    head, payload = _split(path.read_bytes())
    head["ops"][0]["meta"]["precision"] = "fp8"
    path.write_bytes(_repack(head, payload))
    with pytest.raises(DwrError, match="unknown precision 'fp8'"):
        engine.load(path)


def test_cli_precisions_are_the_engines():
    assert CLI_PRECISIONS == STEM_PRECISIONS


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("precision, file_format", [("bf16", 4), ("int8", 5)])
def test_cli_convert_and_bench_take_the_stem_precision(capsys, tmp_path, precision, file_format):
    out = tmp_path / "m.dwre"
    args = ("convert", "resnet20_cifar", "-o", out, "--repeats", "1", "--json")
    rc, stdout, err = _cli(capsys, *args, "--stem-precision", precision)
    assert rc == 0, err
    r = json.loads(stdout)
    assert r["stem_precision"] == precision and r["format"] == file_format
    assert engine.load(out).stem_precision == precision
    bench = ("bench", "resnet20_cifar", "--repeats", "1", "--json")
    rc, stdout, err = _cli(capsys, *bench, "--stem-precision", precision)
    assert rc == 0, err
    assert json.loads(stdout)["stem_precision"] == precision


@pytest.mark.parametrize("command", ["convert", "bench", "predict"])
def test_cli_bad_precision_is_one_line_and_exit_2(capsys, tmp_path, command):
    args = {"convert": ("resnet20_cifar", "-o", tmp_path / "m.dwre"), "bench": ("resnet20_cifar",),
            "predict": (tmp_path / "m.dwre", tmp_path)}[command]  # fmt: skip
    rc, _, err = _cli(capsys, command, *args, "--stem-precision", "int4")
    assert rc == 2 and err.count("\n") == 1 and "invalid choice: 'int4'" in err


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_cli_predict_refuses_another_precision_for_an_engine_file(capsys, tmp_path, precision):
    pre = Preprocess((3, 32, 32), 32, (0.5,) * 3, (0.25,) * 3)
    model = random_model("resnet20_cifar")
    names = list("abcdefghij")
    comp = engine.convert(model, preprocess=pre, class_names=names, stem_precision=precision)
    path = _saved(comp, tmp_path)
    rc, _, err = _cli(capsys, "predict", path, tmp_path, "--stem-precision", "f32")
    assert rc == 2 and err.count("\n") == 1 and f"with a stem in {precision}" in err
