"""The benchmark scripts' own logic, on made-up results (no training, no timing)."""

from __future__ import annotations

import json

import pytest

from benchmark_scripts import load_benchmark


def _row(row: str, seed: int, top1: float, machine: str) -> dict:
    return {
        "model": "resnet20_cifar", "row": row, "method": "one-step", "seed": seed,
        "top1": top1, "depths": [3, 3, 3], "widths": [16, 32, 64], "bops": 4.0e7,
        "flops": 4.4e5, "ops": 1.1e6, "params": 2.7e5, "activations": 1.7e5,
        "latency_ms": 0.8, "trained_on": machine,
    }  # fmt: skip


def test_paper_table_report_only_rebuilds_the_published_files(tmp_path):
    """--report-only gathers every run and job record into results.json, the table and plot:
    mean and std over seeds per (model, row, method), rows in the table's order."""
    pt = load_benchmark("paper_table")
    out, docs = tmp_path / "runs", tmp_path / "docs"
    runs = [
        _row("original", 0, 30.0, "cpu"),
        _row("original", 1, 32.0, "cpu"),
        {**_row("naive_s2", 0, 35.0, "gpu"), "latency_ms": 0.6, "val_top1": 38.5},
    ]
    for r in runs:
        pt.save_json(
            out / r["model"] / r["row"] / r["method"] / f"seed{r['seed']}" / "table_row.json", r
        )
    pt.save_json(out / "jobs" / "resnet20_cifar.one-step.json", {"command": "x", "machine": "cpu"})
    assert pt.main(["--report-only", "--out", str(out), "--docs", str(docs)]) == 0
    published = json.loads((docs / "results.json").read_text())
    assert len(published["runs"]) == 3 and published["jobs"] == [{"command": "x", "machine": "cpu"}]
    table = (docs / "results_table.md").read_text().splitlines()
    assert "31.00 ± 1.41 (2)" in table[2] and "| original |" in table[2]
    assert "35.00 ± 0.00 (1)" in table[3] and "| naive_s2 |" in table[3]
    assert table[3].endswith("| 38.50 | 40.0M | 440.0K | 1.1M | 270.0K | 170.0K | 0.60 | 0.75 |")
    assert "(2) | – |" in table[2] and table[2].endswith("| 0.80 | 1.00 |")  # no val: a dash
    assert (docs / "results.png").stat().st_size > 0


def test_paper_table_job_records_do_not_collide():
    pt = load_benchmark("paper_table")
    a = pt.parse_args(["--models", "vgg_small_cifar", "--methods", "two-step", "--only-seeds", "1"])
    b = pt.parse_args(["--models", "vgg_small_cifar", "--methods", "two-step", "--only-seeds", "2"])
    assert pt.job_path(a) != pt.job_path(b)
    assert pt.job_path(a).name == "vgg_small_cifar.two-step.seed1.json"
    c = pt.parse_args(["--models", "vgg_small_cifar", "--methods", "two-step", "--only-seeds", "1",
                       "--rows", "dwr_latency"])  # fmt: skip
    assert pt.job_path(c).name == "vgg_small_cifar.two-step.seed1.rowsdwr_latency.json"


def test_paper_table_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    pt = load_benchmark("paper_table")
    out = ["--out", str(tmp_path / "runs"), "--docs", str(tmp_path / "docs")]
    assert pt.cli(["--models", "nope", "--data-dir", str(tmp_path), *out]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert pt.cli(["--models", "resnet20_cifar", "--data-dir", str(tmp_path / "none"), *out]) == 2
    assert "no cifar10 data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        pt.cli(["--schedule", "{lr: 1", *out])
    assert stop.value.code == 2 and "--schedule is not JSON" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_paper_table_imports_published_runs_and_reads_validation(tmp_path):
    """--import-runs writes a results.json's runs back as table rows (never over a run on
    disk); a run's validation top-1 is its best epoch's, read from metrics.csv."""
    pt = load_benchmark("paper_table")
    out = tmp_path / "runs"
    here = out / "resnet20_cifar" / "original" / "one-step" / "seed0"
    pt.save_json(here / "table_row.json", _row("original", 0, 99.0, "here"))
    published = {"runs": [_row("original", 0, 30.0, "cpu"), _row("naive_s2", 1, 35.0, "cpu")]}
    pt.save_json(tmp_path / "results.json", published)
    assert pt.import_runs(tmp_path / "results.json", out) == 1
    assert json.loads((here / "table_row.json").read_text())["top1"] == 99.0
    (here / "metrics.csv").write_text("epoch,loss,val_top1\n1,2.0,20.5\n2,1.9,31.25\n3,1.8,30.0\n")
    assert pt.best_val_top1(here) == 31.25
    assert pt.best_val_top1(tmp_path) is None
    args = pt.parse_args(["--eps", "0.021", "--min-samples", "5", "--cluster-on", "conv"])
    assert pt.search_config(args)["eps"] == 0.021 and pt.search_config(args)["min_samples"] == 5


def test_paper_table_skips_a_run_another_job_holds(tmp_path, monkeypatch, capsys):
    """Parallel jobs on one --out may reach the same run: the one that finds it locked goes
    on with its other runs instead of stopping, and says what it skipped."""
    import dwr
    import dwr.data
    from dwr.errors import RunInUseError

    pt = load_benchmark("paper_table")
    spec = dwr.get_spec("resnet20_cifar")
    monkeypatch.setattr(dwr.data, "load_dataset", lambda *a, **k: object())
    monkeypatch.setattr(pt, "row_specs", lambda *a: {"original": spec, "naive_s2": spec})
    monkeypatch.setattr(pt, "latency_ms", lambda *a: None)

    def train_run(spec, data, run_dir, method, seed, args, teacher):
        if run_dir.parts[-3] == "original":
            raise RunInUseError(f"{run_dir} is in use by another dwr process (pid 1)")
        return {"top1": 50.0, "seconds": 1.0}

    monkeypatch.setattr(pt, "train_run", train_run)
    out, docs = tmp_path / "runs", tmp_path / "docs"
    argv = ["--models", "resnet20_cifar", "--methods", "one-step", "--seeds", "2"]
    assert pt.main([*argv, "--out", str(out), "--docs", str(docs)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("held by another job; skipped") == 2
    assert "2 runs were held by other jobs" in printed
    done = sorted(p.parts[-4] + "/" + p.parts[-2] for p in out.glob("**/table_row.json"))
    assert done == ["naive_s2/seed0", "naive_s2/seed1"]
    assert json.loads((docs / "results.json").read_text())["runs"][0]["top1"] == 50.0


def test_batch_split_benchmark_times_both_splits(tmp_path, monkeypatch, capsys):
    """One tiny case, two rounds: both splits timed in each, ratios per round, one JSON."""
    bs = load_benchmark("batch_split")
    monkeypatch.setattr(bs, "CASES", (("resnet20_cifar", 4),))
    assert bs.main(["--threads", "1"]) == 2
    assert "needs --threads >= 2" in capsys.readouterr().err
    try:
        assert bs.main(["--threads", "2", "--rounds", "2", "--out", str(tmp_path / "b.json")]) == 0
    finally:
        bs.set_num_threads(1)
    case = json.loads((tmp_path / "b.json").read_text())["cases"][0]
    assert case["model"] == "resnet20_cifar" and case["batch"] == 4 and case["chunk"] >= 1
    r = case["ratio_pixels_over_images"]
    assert 0 < r["min"] <= r["median"] <= r["max"]
    assert "pixels/images" in capsys.readouterr().out


def test_bad_input_probe_sorts_outcomes():
    """benchmarks/bad_input_probe.py's classification, on made-up exits (no dwr run)."""
    import signal

    probe = load_benchmark("bad_input_probe")
    bad = probe.Case("x", [])
    one = "dwr: error: no\n"
    assert probe.classify(bad, 2, "", one, 1.0, 100)[0] == "clean"
    assert probe.classify(bad, -signal.SIGKILL, "", "", 60.0, 100)[0] == "hang"
    assert probe.classify(bad, 1, "", "dwr: internal error: KeyError\n", 1.0, 100)[0] == "internal"
    assert probe.classify(bad, 0, "", "", 1.0, 100)[0] == "wrong"  # exit 0 on bad input
    assert probe.classify(bad, 2, "", one, 1.0, 5000)[0] == "wrong"  # GBs of memory
    assert probe.classify(bad, 2, "", one + one, 1.0, 100)[0] == "other"
    slow = probe.Case("x", [], max_cpu_s=10)
    assert probe.classify(slow, 2, "", one, 40.0, 100)[0] == "wrong"  # refused only after work
    line = '{"top_k": [{"index": 3, "score": 0.5}]}\n'
    good = probe.Case("x", [], succeed=True, check=probe.same_as(probe.top_label(line)))
    assert probe.classify(good, 0, line, "", 1.0, 100)[0] == "clean"
    other = line.replace("0.5", "0.6")
    assert probe.classify(good, 0, other, "", 1.0, 100)[0] == "wrong"


def test_time_isas_keeps_each_isas_best_and_restores_the_active_one():
    from dwr.engine import _kernels
    from dwr.engine.bench import time_isas

    calls = []

    def fn():
        calls.append(_kernels.isa())
        return {"t": float(len(calls)), "u": 10.0 - len(calls)}

    before = _kernels.isa()
    best = time_isas(_kernels.isas(), fn, rounds=2)
    n = len(_kernels.isas())
    assert calls == _kernels.isas() * 2 and _kernels.isa() == before
    for i, isa in enumerate(_kernels.isas()):
        assert best[isa] == {"t": i + 1.0, "u": 10.0 - (n + i + 1)}


def test_popcount_peak_counts_its_macs():
    from dwr.engine import _kernels

    macs, _ = _kernels.popcount_peak(10)
    assert macs > 0 and macs % 10 == 0
    pp = load_benchmark("popcount_peak")
    import dwr.engine as engine
    from dwr.backbones import create_model

    comp = engine.convert(create_model("resnet20_cifar", widths=[16, 32, 64]).eval())
    got = pp.binary_macs(comp, 32, 32)
    assert got["stages.0.0"] == 32 * 32 * 16 * 16 * 9
    assert got["stages.1.0"] == 16 * 16 * 32 * 16 * 9


def test_stem_precision_benchmark_writes_every_precision(tmp_path, capsys):
    """One round, one call each: every precision timed, agreement rows in [0, 1], one JSON."""
    sp = load_benchmark("stem_precision")
    out = tmp_path / "s.json"
    args = ["--rounds", "1", "--repeats", "1", "--images", "2", "--out", str(out)]
    assert sp.main(args) == 0
    r = json.loads(out.read_text())
    assert set(r["birealnet18"]) == {"f32", "bf16", "int8"}
    assert all(v["stem_ms"] > 0 and v["end_to_end_ms"] > 0 for v in r["birealnet18"].values())
    assert [row["images"] for row in r["accuracy"]] == [2, 2]
    for p in ("bf16", "int8"):
        assert all(0 <= row[f"top1_agreement_{p}"] <= 1 for row in r["accuracy"])
    out = capsys.readouterr().out
    assert "bf16 vs f32" in out and "int8 vs f32" in out
