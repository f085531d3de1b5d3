"""``paper_table.py --jobs N`` (benchmarks/table_jobs.py): the job plan, what each job waits
for, and the scheduler, with stand-in jobs (no training)."""

from __future__ import annotations

import sys

from benchmark_scripts import load_benchmark

ROWS = ["original", "naive_s2", "dwr"]


def _args(tmp_path, *extra):
    pt = load_benchmark("paper_table")
    argv = ["--models", "resnet20_cifar", "--seeds", "2", "--out", str(tmp_path), *extra]
    return pt.parse_args(argv)


def test_each_job_gets_the_shared_options_and_sets_its_own():
    tj = load_benchmark("table_jobs")
    argv = ["--epochs", "30", "--jobs", "16", "--models", "a", "b", "--seeds=3",
            "--schedule", '{"lr": 1}', "--rows", "dwr", "original", "--threads", "1"]  # fmt: skip
    assert tj.shared_argv(argv) == ["--epochs", "30", "--schedule", '{"lr": 1}', "--threads", "1"]


def test_the_plan_skips_finished_runs_and_waits_for_shared_work(tmp_path):
    tj = load_benchmark("table_jobs")
    args = _args(tmp_path, "--methods", "one-step", "two-step")
    done = tmp_path / "resnet20_cifar" / "naive_s2" / "one-step" / "seed1" / "table_row.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    jobs = {j.name: j for j in tj.plan(args, lambda m: ROWS)}
    assert len(jobs) == 2 * 2 * 3 - 1 and "resnet20_cifar.naive_s2.one-step.seed1" not in jobs
    spec = tmp_path / "resnet20_cifar" / "dwr_search" / "dwr_spec.json"
    teacher = tmp_path / "resnet20_cifar" / "teacher" / "result.json"
    assert jobs["resnet20_cifar.dwr.one-step.seed0"].waits == []  # it runs the search
    assert jobs["resnet20_cifar.dwr.one-step.seed1"].waits == [spec]
    assert jobs["resnet20_cifar.original.two-step.seed0"].waits == []  # it trains the teacher
    assert jobs["resnet20_cifar.naive_s2.two-step.seed0"].waits == [teacher]
    assert jobs["resnet20_cifar.dwr.two-step.seed1"].waits == [spec, teacher]
    order = list(jobs)  # the search and the teacher first, then jobs that wait for nothing
    assert order[:2] == [
        "resnet20_cifar.dwr.one-step.seed0",
        "resnet20_cifar.original.two-step.seed0",
    ]
    assert all(not jobs[n].waits for n in order[2:5]) and all(jobs[n].waits for n in order[5:])


STAND_IN = """
import json, pathlib, sys
argv = sys.argv[1:]
get = lambda k: argv[argv.index(k) + 1]
out, row, seed = pathlib.Path(get("--out")), get("--rows"), get("--only-seeds")
if row == "naive_s2" and seed == "1":
    sys.exit(3)
base = out / "resnet20_cifar"
if row == "dwr" and seed == "0":
    (base / "dwr_search").mkdir(parents=True, exist_ok=True)
    (base / "dwr_search" / "dwr_spec.json").write_text("{}")
if row == "dwr" and seed != "0":
    assert (base / "dwr_search" / "dwr_spec.json").exists()
run = base / row / get("--methods") / f"seed{seed}"
run.mkdir(parents=True, exist_ok=True)
(run / "table_row.json").write_text(json.dumps({"row": row}))
"""


def test_the_scheduler_runs_every_job_once_after_what_it_waits_for(tmp_path, capsys, monkeypatch):
    tj = load_benchmark("table_jobs")
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(tj, "_command", lambda job, shared: [
        sys.executable, str(script), *shared, "--rows", job.row,
        "--only-seeds", str(job.seed), "--methods", job.method,
    ])  # fmt: skip
    out = tmp_path / "runs"
    args = _args(out, "--methods", "one-step", "--jobs", "3")
    status = tj.run_jobs(args, ["--out", str(out), "--jobs", "3"], lambda m: ROWS)
    printed = capsys.readouterr().out
    assert status == 3 and "failed (3): resnet20_cifar.naive_s2.one-step.seed1" in printed
    rows = sorted(
        p.parent.parent.parent.name + p.parent.name for p in out.glob("**/table_row.json")
    )
    assert rows == ["dwrseed0", "dwrseed1", "naive_s2seed0", "originalseed0", "originalseed1"]
    assert "6/6 runs done, 0 running" in printed
    assert (out / "logs" / "resnet20_cifar.naive_s2.one-step.seed1.log").exists()


def test_a_job_whose_maker_failed_is_reported_not_waited_for(tmp_path, capsys, monkeypatch):
    tj = load_benchmark("table_jobs")
    monkeypatch.setattr(tj, "_command", lambda job, shared: [sys.executable, "-c", "exit(1)"])
    out = tmp_path / "runs"
    args = _args(out, "--methods", "one-step", "--jobs", "2", "--seeds", "2")
    assert tj.run_jobs(args, [], lambda m: ["dwr"]) == 1
    assert "not started: resnet20_cifar.dwr.one-step.seed1 waits for" in capsys.readouterr().out


def test_epochs_left_counts_finished_epochs(tmp_path):
    tj = load_benchmark("table_jobs")
    args = _args(tmp_path, "--methods", "one-step", "--epochs", "4")
    jobs = tj.plan(args, lambda m: ["original"])
    run = tmp_path / "resnet20_cifar" / "original" / "one-step" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,loss\n1,2.0\n2,1.5\n")
    assert tj.epochs_left(args, jobs) == 2 + 4
