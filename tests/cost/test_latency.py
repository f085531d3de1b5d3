"""The latency model: table keys, interpolation, the engine's op outline, ``summary --latency``."""

from __future__ import annotations

import json

import pytest

from dwr.backbones import get_spec, list_models
from dwr.cli.main import main
from dwr.cost import latency
from dwr.cost.latency import binary_work, float_work, head_work
from dwr.errors import DwrError

BIN_RATE = 2e5  # work units per ms in the synthetic table


def _bin_rate(words: int, out: int, pixels: int) -> float:
    """A rate that varies with every axis, log-linearly (so interpolation is exact)."""
    return BIN_RATE * words**0.3 * out**0.2 / pixels**0.1


def synthetic_table(threads: int = 1, **key) -> dict:
    """A calibration table computed from formulas instead of timings."""
    binary, floats, heads = [], [], []
    for k, s in ((3, 1), (3, 2), (1, 1)):
        for w in (1, 2, 4, 8):
            for o in (16, 64, 256):
                for side in (2, 8, 32):
                    ms = binary_work(k, w, o, side * side) / _bin_rate(w, o, side * side)
                    binary.append({"k": k, "stride": s, "words": w, "out": o, "oh": side, "ms": ms})
    for k, s, c in ((1, 1, 16), (1, 1, 256), (1, 2, 16), (1, 2, 256), (7, 2, 3), (3, 1, 3)):
        for o in (16, 256):
            for side in (2, 32):
                ms = float_work(k, c, o, side * side) / 1e4
                floats.append({"k": k, "stride": s, "cin": c, "out": o, "oh": side, "ms": ms})
    for c in (16, 512):
        for n in (10, 1000):
            for h in (1, 8):
                heads.append({"cin": c, "classes": n, "h": h, "ms": head_work(c, n, h * h) / 1e5})
    names = ("residual", "hardtanh", "rprelu", "pack_next", "pack_next_shift", "bits_out")
    per = {n: 0.1 for n in names}
    per.update(pack_input=0.2, pack_input_shift=0.3, zero_pad=1.0, maxpool3=0.4, maxpool2=0.3)
    per.update(maxpool2_bits=0.05, avgpool=0.2, channel_adapter=2.0)
    stems = [{**r, "ms": r["ms"] / 2} for r in floats if r["k"] > 1]  # bf16 twice as fast
    stems8 = [{**r, "ms": r["ms"] / 4} for r in floats if r["k"] > 1]  # int8 four times
    table = {
        "format": 1,
        "grid": "synthetic",
        "binary_conv": binary,
        "float_conv": floats,
        "stem_bf16": stems,
        "stem_int8": stems8,
        "head": heads,
        "per_element_ns": per,
        "call_ms": 0.01,
        "key": {**latency.runtime_key(threads), **key},
    }
    return table


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_interpolation_is_exact_for_a_log_linear_rate():
    table = latency.LatencyTable(synthetic_table())
    for words, out, side in ((3, 100, 5), (1, 17, 7), (6, 200, 20)):
        p = side * side
        want = binary_work(3, words, out, p) / _bin_rate(words, out, p)
        assert table.binary_ms(3, 1, 64 * words, out, p) == pytest.approx(want, rel=1e-9)


def test_time_follows_packed_words_and_tiles():
    table = latency.LatencyTable(synthetic_table())
    t = {c: table.binary_ms(3, 1, c, 64, 64) for c in (1, 64, 65, 128)}
    assert t[1] == pytest.approx(t[64])  # one word either way
    assert t[65] == pytest.approx(t[128])  # a second word, however few channels it holds
    assert t[65] > 1.5 * t[64]
    o = {n: table.binary_ms(3, 1, 64, n, 64) for n in (57, 64, 65)}
    assert o[57] == pytest.approx(o[64], rel=0.05) and o[65] > o[64]  # tiles of 8 outputs


def test_outside_the_grid_the_edge_rate_holds():
    table = latency.LatencyTable(synthetic_table())
    small = table.binary_ms(3, 1, 64 * 8, 256, 32 * 32)
    big = table.binary_ms(3, 1, 64 * 16, 256, 32 * 32)
    assert big == pytest.approx(2 * small)


def test_missing_grid_cells_take_the_nearest_measured_rate():
    data = synthetic_table()
    data["binary_conv"] = [
        r
        for r in data["binary_conv"]
        if not (r["words"] == 8 and r["out"] == 256 and r["oh"] == 32)
    ]
    table = latency.LatencyTable(data)
    p = 32 * 32
    got = table.binary_ms(3, 1, 512, 256, p)
    near = binary_work(3, 8, 256, p) / _bin_rate(8, 256, 8 * 8)  # the rate at side 8
    assert got == pytest.approx(near, rel=1e-9)


@pytest.mark.parametrize("name", list_models())
def test_outline_matches_the_engine_ops(name):
    """The model prices the ops the engine really runs (a spec's lowering, checked against
    a model's lowering compiled)."""
    import dwr.engine
    from dwr.backbones import create_model
    from dwr.engine.ops import BinaryConv, MaxPool2

    spec = get_spec(name)
    small = spec.replace(widths=tuple(max(8, w // 8) for w in spec.widths))
    if small.extra.get("stem_adapter") or getattr(small, "stem_adapter", False):
        small = small.replace(
            widths=(min(small.widths[0], 2 * small.stem_width), *small.widths[1:])
        )
    engine = dwr.engine.convert(create_model(small).eval())
    ops = latency.outline(small)
    assert [op.name for op in ops] == [op.name for op in engine.ops]
    for mine, theirs in zip(ops, engine.ops, strict=True):
        if isinstance(theirs, BinaryConv):
            keys = ("in_channels", "out_channels", "k", "stride", "shortcut", "sc_stride")
            assert [getattr(mine, k) for k in keys] == [getattr(theirs, k) for k in keys]
            assert mine.output == theirs.out
            assert bool(mine.pack_next) == theirs._pack_next
            assert mine.shifted == (theirs.shift is not None)
        if isinstance(theirs, MaxPool2):
            assert mine.on_bits == theirs.on_bits


@pytest.mark.parametrize("precision, speedup", [("bf16", 2), ("int8", 4)])
def test_a_low_precision_stem_is_priced_from_its_own_rows(precision, speedup):
    """``stem_precision`` prices the stem from that precision's rows (the synthetic table
    makes them 2x and 4x faster than f32) and leaves every other op as it was."""
    table = latency.LatencyTable(synthetic_table())
    spec = get_spec("birealnet18")
    f32 = latency.predict(spec, table)
    low = latency.predict(spec, table, stem_precision=precision)
    (stem32, ms32), (stem_low, ms_low) = f32.ops[0], low.ops[0]
    assert stem32.precision == "f32" and stem_low.precision == precision
    pool = table.per_element_ms("maxpool3", stem32.conv_hw(stem32.in_hw)[0] ** 2 * 64)
    assert ms_low - pool == pytest.approx((ms32 - pool) / speedup, rel=1e-9)
    assert [ms for _, ms in f32.ops[1:]] == [ms for _, ms in low.ops[1:]]
    assert latency.predict(spec, table).ops[0][0].precision == "f32"  # the cache is untouched


def test_predict_sums_its_ops_and_grows_with_width():
    table = latency.LatencyTable(synthetic_table())
    spec = get_spec("resnet20_cifar")
    report = latency.predict(spec, table)
    assert report.total_ms == pytest.approx(0.01 + sum(ms for _, ms in report.ops))
    wider = latency.predict_ms(spec.replace(widths=(32, 64, 128)), table=table)
    assert wider > report.total_ms
    rows = report.to_dict()["layers"]
    assert rows[0]["name"] == "stem" and rows[-1]["name"] == "head"


def test_missing_table_says_run_profile(cache):
    with pytest.raises(DwrError, match=r"dwr profile --threads 1"):
        latency.load_table(1)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("cpu", "Some Other CPU", "CPU"),
        ("isa", "some_other_isa", "kernel ISA"),
        ("engine", "0.0.0+beef", "engine version"),
    ],
)
def test_table_from_elsewhere_is_refused(cache, field, value, needle):
    path = latency.save_table(synthetic_table(**{field: value}))
    with pytest.raises(DwrError, match=f"refusing latency table.*{needle}.*dwr profile"):
        latency.load_table(1, path)


def test_table_for_other_threads_is_refused(cache):
    path = latency.save_table(synthetic_table(threads=2))
    assert latency.load_table(2).key["threads"] == 2
    with pytest.raises(DwrError, match="thread count 2"):
        latency.load_table(1, path)


def test_save_is_atomic_and_round_trips(cache):
    path = latency.save_table(synthetic_table())
    assert path.parent == cache / "dwr" / "latency"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert latency.load_table(1).key == json.loads(path.read_text())["key"]


def test_summary_latency(cache, capsys):
    latency.save_table(synthetic_table())
    assert main(["summary", "resnet20_cifar", "--latency"]) == 0
    out = capsys.readouterr().out
    assert "predicted engine latency" in out and "stages.2.5" in out and "total" in out
    assert main(["summary", "resnet20_cifar", "--latency", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["latency"]["total_ms"] > 0 and len(data["latency"]["layers"]) == 20


def test_summary_latency_without_table_is_one_line(cache, capsys):
    assert main(["summary", "resnet20_cifar", "--latency"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "dwr profile" in err[0] and "Traceback" not in captured.err
    assert captured.out == ""


def test_latency_budget_metric(cache):
    from dwr.reshape.budget import METRICS, metric_value, resolve_budget

    assert "latency" in METRICS
    spec = get_spec("resnet20_cifar")
    with pytest.raises(DwrError, match="dwr profile"):
        resolve_budget("original", "latency", spec)
    latency.save_table(synthetic_table())
    table = latency.load_table(1)
    assert resolve_budget("original", "latency", spec) == pytest.approx(
        latency.predict_ms(spec, table=table)
    )
    assert metric_value(spec, "latency") == pytest.approx(latency.predict_ms(spec, table=table))


def test_latency_search_stays_under_the_budget(cache):
    from dwr.reshape.budget import find_width_scale, metric_value

    latency.save_table(synthetic_table())
    original, reshaped = get_spec("resnet20_cifar"), get_spec("resnet20_cifar_dwr")
    budget = metric_value(original, "latency")
    for multiple in (1, 16):
        _, spec = find_width_scale(reshaped, budget, "latency", width_multiple=multiple)
        assert metric_value(spec, "latency") <= budget * 1.03
        assert all(w % multiple == 0 for w in spec.widths)
        wider = spec.replace(widths=tuple(w + multiple for w in spec.widths))
        assert metric_value(wider, "latency") > budget * 0.97  # nothing much wider fits


def test_width_multiple_that_cannot_meet_a_budget(cache):
    from dwr.reshape.budget import find_width_scale, metric_value

    latency.save_table(synthetic_table())
    spec = get_spec("resnet20_cifar")
    with pytest.raises(DwrError, match="width multiple 64 cannot meet the bops budget"):
        find_width_scale(spec, metric_value(spec, "bops"), "bops", width_multiple=64)
    with pytest.raises(DwrError, match="below the narrowest network.*--width-multiple"):
        find_width_scale(spec, 1e-3, "latency", width_multiple=64)
    with pytest.raises(DwrError, match="width multiple must be a whole number"):
        find_width_scale(spec, 1.0, "latency", width_multiple=0)


def test_naive_reshape_width_multiple():
    from dwr.reshape.naive import naive_reshape

    spec = get_spec("resnet18_cifar")
    plain, packed = naive_reshape(spec, 2), naive_reshape(spec, 2, width_multiple=64)
    assert plain.widths == (91, 181, 362, 724)
    assert packed.widths == (64, 192, 384, 704) and packed.depths == plain.depths


def test_prune_to_a_latency_budget_in_width_multiples(cache):
    import torch

    from dwr.backbones import create_model
    from dwr.reshape import prune
    from dwr.reshape.budget import metric_value
    from dwr.reshape.pipeline import pretrain_spec

    latency.save_table(synthetic_table())
    original = get_spec("resnet20_cifar")
    net = create_model(pretrain_spec(original, 2.0, 1.5)).eval()
    images = torch.randn(16, 3, 32, 32)
    budget = metric_value(original, "latency")
    result = prune(net, images, budget, "latency", width_multiple=8)
    assert all(w % 8 == 0 for w in result.spec.widths)
    assert metric_value(result.spec, "latency") <= budget * 1.03


def test_cli_width_multiple_and_latency_budget_errors(cache, capsys, tmp_path):
    assert (
        main(["reshape", "resnet18_cifar", "--factor", "2", "--width-multiple", "64", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["widths"] == [64, 192, 384, 704]
    out = tmp_path / "run"
    for argv, needle in (
        (["--budget-metric", "latency"], "dwr profile"),
        (["--width-multiple", "64"], "width multiple 64 cannot meet the bops budget"),
        (["--width-multiple", "0"], "--width-multiple"),
    ):
        assert main(["run", "--out", str(out), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]
        assert not out.exists()


def test_latency_benchmark_script_writes_its_table(cache, tmp_path, capsys):
    """benchmarks/latency.py end to end on one small backbone (its logic, not its speed)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "latency.py"
    spec = importlib.util.spec_from_file_location("latency_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    latency.save_table(synthetic_table())
    out = tmp_path / "latency.json"
    argv = ["--sections", "models", "--models", "resnet20_cifar", "--rounds", "1"]
    assert bench.main([*argv, "--repeats", "2", "--out", str(out)]) == 0
    models = json.loads(out.read_text())["models"]
    row = models["rows"][0]
    assert row["name"] == "resnet20_cifar" and row["t1"]["measured_ms"] > 0
    assert len(models["reference"]["per_round_ms"]) == 1  # the drift probe, once per round
    assert row["t1"]["predicted_ms"] == pytest.approx(
        latency.predict_ms(get_spec("resnet20_cifar"), table=latency.load_table(1))
    )
    printed = capsys.readouterr().out
    assert "within 10%" in printed and "drift: the reference conv" in printed
    assert bench.main(["--sections", "nosuch", "--out", str(out)]) == 2


def _damage(table: dict, what: str) -> dict:
    """One damage of issue 24 to a valid table."""
    if what == "no-head":
        del table["head"]
    elif what == "head-empty":
        table["head"] = []
    elif what == "ms-nan":
        table["binary_conv"][0]["ms"] = float("nan")
    elif what == "ms-negative":
        for row in table["binary_conv"]:
            row["ms"] = -row["ms"]
    elif what == "ms-zero":
        for row in table["float_conv"]:
            row["ms"] = 0.0
    elif what == "call-inf":
        table["call_ms"] = float("inf")
    elif what == "shape-string":
        table["head"][0]["cin"] = "16"
    elif what == "per-element-nan":
        table["per_element_ns"]["residual"] = float("nan")
    return table


DAMAGES = [
    "no-head", "head-empty", "ms-nan", "ms-negative", "ms-zero", "call-inf", "shape-string",
    "per-element-nan",
]  # fmt: skip


@pytest.mark.parametrize("what", DAMAGES)
def test_a_damaged_table_is_refused_naming_the_file_and_the_fix(cache, capsys, what):
    """No header, NaN, negative or zero times once gave an internal KeyError or printed
    ``nan ms`` / a time 6x too small with exit 0."""
    path = latency.table_path(1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_damage(synthetic_table(), what)))  # NaN written as NaN
    assert main(["summary", "resnet20_cifar", "--latency"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "damaged latency table" in err[0], captured.err
    assert str(path) in err[0] and "dwr profile" in err[0]
    assert captured.out == ""
    out = cache / "run"
    assert main(["run", "--out", str(out), "--budget-metric", "latency"]) == 2
    assert "damaged latency table" in capsys.readouterr().err


def test_the_undamaged_table_passes_the_check():
    latency.check_table(synthetic_table())  # the control of the test above


def test_a_table_that_is_a_fifo_is_refused_at_once(cache, capsys):
    import os

    path = latency.table_path(1)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with pytest.raises(DwrError, match="not a regular file|no latency calibration table"):
        latency.load_table(1, path)


def test_tables_are_kept_per_kernel_isa(cache):
    """Each kernel ISA has its own table (its times differ): its own file and key."""
    from dwr.engine import _kernels

    paths, keys = set(), set()
    try:
        for isa in _kernels.isas():
            _kernels.set_isa(isa)
            paths.add(latency.table_path(1))
            keys.add(latency.runtime_key(1)["isa"])
    finally:
        _kernels.set_isa(_kernels.load_isa())
    assert len(paths) == len(keys) == len(_kernels.isas())


def test_work_is_counted_in_the_active_kernel_tables_blocks():
    """Each ISA states its own GEMM and float-conv blocks; the work formula rounds to them."""
    from dwr.engine import _kernels

    try:
        for isa in _kernels.isas():
            _kernels.set_isa(isa)
            tiles = latency.kernel_tiles()
            assert set(tiles) == {"binary", "float"}
            assert all(isinstance(v, int) and v >= 1 for t in tiles.values() for v in t)
            (bp, bo), (fp, fo) = tiles["binary"], tiles["float"]
            # one pixel and one output past a block: two blocks each way
            assert binary_work(3, 2, bo + 1, bp + 1) == 2 * 2 * 9 * 2
            assert float_work(1, 16, fo, fp) == 16
    finally:
        _kernels.set_isa(_kernels.load_isa())
