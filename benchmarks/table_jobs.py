"""``paper_table.py --jobs N``: the table as one process per (backbone, row, method, seed), N at
once, on one machine: a GPU box trains many small BNNs side by side, since one of them leaves
most of the GPU idle.

Shared work is done once and waited for: the first seed's ``dwr`` job runs the DWR search and
the other seeds' ``dwr`` jobs start when its ``dwr_spec.json`` exists; the first two-step job
trains the teacher and the other two-step jobs wait for its ``result.json``. Every run resumes
from its last checkpoint, so after a kill the same command goes on where the table stopped.
Every 30 s it prints how many runs and epochs are left.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Options that ``--jobs`` sets per job; every other option is passed to each job as given.
PER_JOB = ("--jobs", "--models", "--methods", "--seeds", "--only-seeds", "--rows")


@dataclass
class Job:
    model: str
    row: str
    method: str
    seed: int
    waits: list[Path] = field(default_factory=list)
    makes: bool = False  # the DWR search's spec or the teacher, which other jobs wait for
    proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.model}.{self.row}.{self.method}.seed{self.seed}"


def shared_argv(argv: list[str]) -> list[str]:
    """``argv`` without the options each job sets for itself (and their values)."""
    out, skipping = [], False
    for token in argv:
        if token.startswith("--"):
            skipping = token.split("=", 1)[0] in PER_JOB
            if skipping:
                continue
        elif skipping:
            continue
        out.append(token)
    return out


def plan(args: argparse.Namespace, row_names) -> list[Job]:
    """Every (model, row, method, seed) without a ``table_row.json``, with what it waits for."""
    seeds = args.only_seeds if args.only_seeds is not None else list(range(args.seeds))
    jobs = []
    for method in args.methods:
        for seed in seeds:
            for model in args.models:
                names = row_names(model)
                for row in names:
                    run = args.out / model / row / method / f"seed{seed}"
                    if not (run / "table_row.json").exists():
                        job = Job(model, row, method, seed)
                        first = (args.methods[0], seeds[0], names[0])
                        job.waits = _waits(args, job, first)
                        job.makes = _makes(args, job, first)
                        jobs.append(job)
    # the jobs that others wait for go first, then those that wait for nothing
    jobs.sort(key=lambda j: (not j.makes, len(j.waits)))
    return jobs


def _makes(args: argparse.Namespace, job: Job, first: tuple[str, int, str]) -> bool:
    """Whether ``job`` makes what other jobs wait for (see :func:`_waits`)."""
    method, seed, row = first
    search = job.row == args.dwr_row and (job.method, job.seed) == (method, seed)
    teacher = job.method == "two-step" and (job.seed, job.row) == (seed, row)
    return search or teacher


def _waits(args: argparse.Namespace, job: Job, first: tuple[str, int, str]) -> list[Path]:
    """The files ``job`` needs from another job: the DWR search's spec (made by the first
    method's first-seed ``dwr`` job) and the float teacher (made by the first two-step job)."""
    method, seed, row = first
    waits = []
    if job.row == args.dwr_row and (job.method, job.seed) != (method, seed):
        waits.append(args.out / job.model / f"{args.dwr_row}_search" / "dwr_spec.json")
    if job.method == "two-step" and (job.seed, job.row) != (seed, row):
        waits.append(args.out / job.model / "teacher" / "result.json")
    return waits


def _command(job: Job, shared: list[str]) -> list[str]:
    return [
        sys.executable, str(HERE / "paper_table.py"), *shared,
        "--models", job.model, "--methods", job.method,
        "--only-seeds", str(job.seed), "--rows", job.row,
    ]  # fmt: skip


def epochs_left(args: argparse.Namespace, jobs: list[Job]) -> int:
    """Epochs still to train in unfinished jobs (each run's metrics.csv counts its epochs)."""
    left = 0
    for job in jobs:
        run = args.out / job.model / job.row / job.method / f"seed{job.seed}"
        if (run / "table_row.json").exists():
            continue
        phases = [run / "step1", run] if job.method == "two-step" else [run]
        per_phase = args.two_step_epochs or max(1, args.epochs // 2)
        total = args.epochs if job.method == "one-step" else per_phase * 2
        left += max(0, total - sum(_rows(p / "metrics.csv") for p in phases))
    return left


def _rows(path: Path) -> int:
    try:
        with open(path) as f:
            return sum(1 for _ in csv.DictReader(f))
    except OSError:
        return 0


def run_jobs(args: argparse.Namespace, argv: list[str], row_names) -> int:
    """Run the table's jobs ``args.jobs`` at a time; returns the first failed job's exit code."""
    jobs = plan(args, row_names)
    shared = shared_argv(argv)
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or 1)}
    waiting, running, status, last_report = list(jobs), [], 0, 0.0
    print(f"{len(jobs)} runs to train, {args.jobs} at a time; logs in {logs}", flush=True)
    while waiting or running:
        for job in [j for j in running if j.proc.poll() is not None]:
            running.remove(job)
            if job.proc.returncode != 0:
                status = status or job.proc.returncode
                print(f"failed ({job.proc.returncode}): {job.name}, see its log", flush=True)
        for job in [j for j in waiting if all(w.exists() for w in j.waits)]:
            if len(running) >= args.jobs:
                break
            waiting.remove(job)
            with open(logs / f"{job.name}.log", "ab") as log:
                job.proc = subprocess.Popen(
                    _command(job, shared), stdout=log, stderr=subprocess.STDOUT, env=env
                )
            running.append(job)
        if not running and waiting:  # what they wait for will never come
            for job in waiting:
                print(f"not started: {job.name} waits for {job.waits[0]}", flush=True)
            return status or 1
        if time.time() - last_report > 30 or not (waiting or running):
            last_report = time.time()
            done = len(jobs) - len(waiting) - len(running)
            print(
                f"[{time.strftime('%H:%M:%S')}] {done}/{len(jobs)} runs done, {len(running)} "
                f"running, {epochs_left(args, jobs)} epochs left",
                flush=True,
            )
        time.sleep(1)
    return status
