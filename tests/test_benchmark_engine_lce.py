"""benchmarks/engine.py's throughput summary and vs_lce.py's argument checks (no timing)."""

from __future__ import annotations

import argparse

from benchmark_scripts import load_benchmark


def test_engine_summary_of_throughput_alone():
    """--sections throughput: no batch-1 models table, so no scaling entries; one ratio and
    one per-image entry per batch > 1, and no constant for another engine."""
    eng = load_benchmark("engine")
    assert not hasattr(eng, "LCE_X86_MS")
    args = argparse.Namespace(threads=[1, 2], models=eng.MODELS)
    rows = [
        {"model": "m", "threads": 1, "batch": 1, "speedup": 4.0, "per_image_vs_b1": 1.0},
        {"model": "m", "threads": 1, "batch": 32, "speedup": 5.5, "per_image_vs_b1": 1.1},
    ]
    assert eng.summarize(args, [], rows) == {
        "m_b32_t1_vs_float32": 5.5,
        "m_b32_t1_per_image_vs_b1": 1.1,
    }


def test_vs_lce_refuses_a_missing_lce_python(tmp_path, capsys):
    vs = load_benchmark("vs_lce")
    assert vs.main(["--lce-python", str(tmp_path / "nope" / "python")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an executable" in err[0]
