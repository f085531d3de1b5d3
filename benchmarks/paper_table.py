"""The paper's table on real data: original vs naive reshaped vs DWR backbones, side by side.

For each backbone (default ``resnet20_cifar`` and ``vgg_small_cifar``) and method (``one-step``
IR-Net style; ``two-step`` ReActNet style with distillation from a float teacher of the same
family), trains every row with the same seeds and schedule and evaluates it on the test split:

- ``original``: the backbone as registered;
- ``naive_s2`` / ``naive_s3``: naive reshaping (depth / s, width * sqrt(s)), widths then scaled
  uniformly so the BOPs match the original's within ±3% (s3 only where it changes the depths);
- ``dwr``: the DWR pipeline (pre-train the over-parameterised naive reshaped network, prune by
  clustering to the original's BOPs; ``--factor``, ``--overparam``, ``--pretrain-epochs``,
  ``--samples``, ``--cluster-on``, ``--min-samples`` and ``--eps`` are its knobs, and
  ``--dwr-row`` names a row searched with other knobs); the search runs once per backbone on
  seed 0's training split, and every seed then trains the found spec from scratch;
- ``authors_dwr``: the DWR authors' published widths (``*_dwr`` models), where they exist.

Every (backbone, row, method, seed) writes its result as it finishes and is skipped on a rerun,
so the table survives interrupted sessions. Schedules are chosen on a validation split carved
from the training batches; the test split is used only for the final number of each run, taken
with the checkpoint of the best *validation* epoch (nothing is picked on test).

    python benchmarks/paper_table.py --data-dir ../shared/data/cifar10-5k/cifar-10-batches-py

writes ``results.json``, ``results_table.md`` and ``results.png`` into ``--docs`` (rebuilt after
every run; ``--report-only`` rebuilds them from the JSON): by default ``docs/results_4k/``, the
4k-image table that ``docs/results_4k.md`` discusses; ``docs/results.md`` holds the full-CIFAR
table.
``--jobs N`` trains N runs at once, one process each (``benchmarks/table_jobs.py``): on a GPU
box, for example ``--jobs 16 --schedule '{"optimizer": "adam", "lr": 5e-3}'``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dwr import search_defaults as D
from dwr.errors import RunInUseError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-5k" / "cifar-10-batches-py"
#: Short-schedule optimiser, chosen on the validation split (see docs/results_4k.md).
SCHEDULE = {"optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0}
ROW_ORDER = ["original", "naive_s2", "naive_s3", "dwr", "dwr_stage", "dwr_latency", "authors_dwr"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA, help="a CIFAR-10 format directory"
    )
    p.add_argument("--dataset", default="cifar10", help="dataset format of --data-dir")
    p.add_argument("--models", nargs="+", default=["resnet20_cifar", "vgg_small_cifar"])
    p.add_argument("--methods", nargs="+", default=["one-step", "two-step"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--only-seeds", type=int, nargs="+", help="run just these seeds (parallel jobs)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--two-step-epochs",
        type=int,
        default=None,
        help="epochs per step of two-step runs (default: epochs // 2, the same total)",
    )
    p.add_argument(
        "--pretrain-epochs", type=int, default=None, help="default: the search defaults' fraction"
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--schedule",
        default=json.dumps(SCHEDULE),
        help="JSON recipe overrides for every run (default chosen on the validation split)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--overparam", type=float, default=D.OVERPARAM)
    p.add_argument("--samples", type=int, default=D.SAMPLES, help="images for clustering")
    p.add_argument("--factor", type=float, default=D.FACTOR, help="reshaping factor of the search")
    p.add_argument(
        "--cluster-on",
        choices=("stage", "conv"),
        default=D.CLUSTER_ON,
        help="cluster stage outputs, or each stage's last binary conv output before BN",
    )
    p.add_argument("--min-samples", type=int, default=D.MIN_SAMPLES, help="DBSCAN min_samples")
    p.add_argument(
        "--eps",
        default="auto" if D.EPS is None else str(D.EPS),
        help="'auto' (bisect eps to the budget) or a fixed eps whose widths are scaled to it",
    )
    p.add_argument(
        "--eps-scale",
        choices=("global", "stage"),
        default=D.EPS_SCALE,
        help="one eps for every stage, or eps in units of each stage's k-distance",
    )
    p.add_argument("--dwr-row", default="dwr", help="row name of the DWR search's spec")
    p.add_argument(
        "--budget-metric",
        choices=("bops", "ops", "latency"),
        default="bops",
        help="the DWR search's budget: the original's BOPs (default), OPs, or predicted engine "
        "latency (dwr profile's table; e.g. --dwr-row dwr_latency --budget-metric latency)",
    )
    p.add_argument("--width-multiple", type=int, default=1, help="DWR search widths in multiples")
    p.add_argument("--rows", nargs="+", default=None, help="train only these rows")
    p.add_argument(
        "--import-runs",
        type=Path,
        default=None,
        help="a results.json whose runs are written back under --out (skipped when on disk)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "paper_table")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "results_4k")
    p.add_argument("--threads", type=int, default=None, help="torch threads for training")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train this many runs at once, one process each (a GPU box; see table_jobs.py)",
    )
    p.add_argument("--report-only", action="store_true")
    p.add_argument(
        "--remeasure-latency",
        action="store_true",
        help="measure every finished row's engine latency again (all side by side), then publish",
    )
    args = p.parse_args(argv)
    try:
        overrides = json.loads(args.schedule)
    except json.JSONDecodeError as exc:
        p.error(f"--schedule is not JSON: {exc}")
    if not isinstance(overrides, dict):
        p.error("--schedule must be a JSON object of recipe overrides")
    if args.eps != "auto":
        try:
            args.eps = float(args.eps)
        except ValueError:
            p.error(f"--eps must be 'auto' or a number, got {args.eps!r}")
    return args


# -- rows -------------------------------------------------------------------------------------
def row_specs(model: str, args: argparse.Namespace, data, out: Path) -> dict[str, Any]:
    """The spec of every row of one backbone, all at the original's BOPs."""
    import dwr

    rows = fixed_rows(model, args, data.num_classes)
    if args.rows is None or args.dwr_row in args.rows:
        original = dwr.get_spec(model, num_classes=data.num_classes)
        rows[args.dwr_row] = dwr_spec(original, args, data, out / model / f"{args.dwr_row}_search")
    return rows


def row_names(model: str, args: argparse.Namespace) -> list[str]:
    """The rows of one backbone that this job trains, in the table's order (no search run)."""
    names = list(fixed_rows(model, args, 10))
    if args.rows is None or args.dwr_row in args.rows:
        names.append(args.dwr_row)
    return names


def fixed_rows(model: str, args: argparse.Namespace, num_classes: int) -> dict[str, Any]:
    """The rows whose spec needs no search (``--rows`` applied)."""
    import dwr
    from dwr.cost import count_cost
    from dwr.reshape import naive_reshape, scale_to_budget

    original = dwr.get_spec(model, num_classes=num_classes)
    budget = count_cost(original).bops
    rows: dict[str, Any] = {"original": original}
    s2 = scale_to_budget(naive_reshape(original, 2), budget, "bops")
    rows["naive_s2"] = s2
    s3 = naive_reshape(original, 3)
    if s3.depths != naive_reshape(original, 2).depths:
        rows["naive_s3"] = scale_to_budget(s3, budget, "bops")
    authors = f"{model}_dwr"
    if authors in dwr.list_models():
        rows["authors_dwr"] = dwr.get_spec(authors, num_classes=num_classes)
    if args.rows is not None:
        rows = {k: v for k, v in rows.items() if k in args.rows}
    return rows


def search_config(args: argparse.Namespace) -> dict[str, Any]:
    """The DWR search's knobs (a cached search is reused only with the same ones)."""
    return {
        "factor": args.factor,
        "overparam": args.overparam,
        "pretrain_epochs": args.pretrain_epochs or max(1, round(args.epochs * D.PRETRAIN_FRACTION)),
        "samples": args.samples,
        "cluster_on": args.cluster_on,
        "min_samples": args.min_samples,
        "eps": args.eps,
        **({"budget_metric": args.budget_metric} if args.budget_metric != "bops" else {}),
        **({"width_multiple": args.width_multiple} if args.width_multiple != 1 else {}),
        **({"eps_scale": args.eps_scale} if args.eps_scale != "global" else {}),
    }


def dwr_spec(original, args: argparse.Namespace, data, out: Path):
    """The DWR pipeline's search (pre-train the over-parameterised naive s=2 network, prune it
    to the original's BOPs), run once per backbone and cached in ``out/dwr_spec.json``."""
    from dwr.backbones import BackboneSpec
    from dwr.errors import DwrError
    from dwr.reshape.pipeline import search_dwr_spec

    done, config = out / "dwr_spec.json", search_config(args)
    if done.exists():
        old = json.loads((out / "search_config.json").read_text())
        if old != config:
            raise DwrError(f"{out} holds a search with other knobs ({old}); use another --dwr-row")
        return BackboneSpec.from_json(done.read_text())
    found = search_dwr_spec(
        original,
        data,
        out,
        factor=args.factor,
        overparam=args.overparam,
        overrides={**schedule(args), "epochs": config["pretrain_epochs"]},
        samples=args.samples,
        min_samples=args.min_samples,
        eps=None if args.eps == "auto" else args.eps,
        tensor=args.cluster_on,
        budget_metric=args.budget_metric,
        width_multiple=args.width_multiple,
        eps_scale=args.eps_scale,
    )
    save_json(out / "prune.json", found.to_dict())
    save_json(out / "search_config.json", config)
    save_json(done, found.spec.to_dict())
    return found.spec


def best_val_top1(run_dir: Path) -> float | None:
    """Validation top-1 of the epoch the run's checkpoint was selected on (its best)."""
    import csv

    try:
        with open(run_dir / "metrics.csv") as f:
            vals = [float(r["val_top1"]) for r in csv.DictReader(f) if r.get("val_top1")]
    except (OSError, ValueError, KeyError):
        return None
    return max(vals) if vals else None


def import_runs(path: Path, out: Path) -> int:
    """Write the runs of a published results.json back as ``table_row.json`` files, so a
    fresh checkout resumes the table without retraining them (runs on disk win)."""
    runs = json.loads(path.read_text())["runs"]
    n = 0
    for r in runs:
        target = out / r["model"] / r["row"] / r["method"] / f"seed{r['seed']}" / "table_row.json"
        if not target.exists():
            save_json(target, r)
            n += 1
    return n


def schedule(args: argparse.Namespace) -> dict[str, Any]:
    """Recipe overrides shared by every run (chosen on the validation split)."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, **json.loads(args.schedule)}


# -- running ----------------------------------------------------------------------------------
def latency_ms(spec, cache: dict[str, float]) -> float | None:
    """Engine latency at batch 1 on one thread (random weights: speed does not depend on them)."""
    key = spec.to_json()
    if key in cache:
        return cache[key]
    try:
        import numpy as np

        from dwr.backbones import build
        from dwr.engine import convert, set_num_threads

        set_num_threads(1)
        engine = convert(build(spec).eval())
        x = np.random.default_rng(0).standard_normal((1, *spec.input_size)).astype(np.float32)
        engine(x)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            engine(x)
            times.append(time.perf_counter() - t)
        cache[key] = 1000 * min(times)  # min: robust to other jobs on a shared machine
    except Exception as exc:  # the table still stands without a latency column
        print(f"  (no engine latency: {exc})", file=sys.stderr)
        cache[key] = None
    return cache[key]


def train_run(spec, data, run_dir: Path, method: str, seed: int, args, teacher) -> dict[str, Any]:
    """Train one row/method/seed (resumable); ``train``'s result (test top-1 of the epoch
    best on validation, wall seconds, ...)."""
    from dwr.train import train

    return train(
        spec,
        data,
        run_dir,
        recipe=method,
        overrides=method_schedule(args, method),
        teacher=teacher if method == "two-step" else None,
        resume=True,
        quiet=True,
        seed=seed,
    )


def method_schedule(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """Two-step runs get half the epochs per step, so every row trains as many epochs."""
    if method != "two-step":
        return schedule(args)
    return {**schedule(args), "epochs": args.two_step_epochs or max(1, args.epochs // 2)}


def teacher_for(model: str, data, args, out: Path) -> Path:
    """A float twin of the original backbone, trained once on the same data."""
    import dwr
    from dwr.train import train

    spec = dwr.get_spec(model, num_classes=data.num_classes, float=True)
    run = out / model / "teacher"
    result = train(
        spec,
        data,
        run,
        recipe="one-step",
        overrides=schedule(args),
        resume=True,
        quiet=True,
        seed=0,
    )
    return Path(result["checkpoint"])


def main(argv: list[str] | None = None) -> int:
    """One job (its backbones, methods and seeds) at a time per ``--out``: a second process
    running the same job there exits 2 naming the first's pid. Parallel jobs with other
    backbones, methods or seeds share ``--out``; every run directory has its own lock, and a job
    that finds a run locked by another skips it and goes on with the rest."""
    from dwr.files import run_lock

    args = parse_args(argv)
    if args.report_only or args.remeasure_latency:
        if args.remeasure_latency:
            remeasure_latency(args)
        publish(args)
        return 0
    with run_lock(args.out / "jobs", name=job_path(args).with_suffix(".lock").name):
        if args.jobs > 1:
            return _run_jobs(args, sys.argv[1:] if argv is None else argv)
        return _train_table(args)


def _run_jobs(args: argparse.Namespace, argv: list[str]) -> int:
    """The table as parallel jobs (``table_jobs.py``), after checking the model names."""
    import dwr

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from table_jobs import run_jobs

    for model in args.models:  # an unknown name fails now, not in every job
        dwr.get_spec(model)
    return run_jobs(args, argv, lambda m: row_names(m, args))


def _train_table(args: argparse.Namespace) -> int:
    import torch

    import dwr
    from dwr.data import load_dataset

    for model in args.models:  # an unknown name fails now, not after loading the data
        dwr.get_spec(model)
    if args.budget_metric == "latency":  # no calibration table: say so now, not after training
        from dwr.cost.latency import load_table

        load_table(1)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.import_runs is not None:
        print(f"imported {import_runs(args.import_runs, args.out)} runs from {args.import_runs}")
    data = load_dataset(args.dataset, args.data_dir, val_fraction=args.val_fraction, seed=0)
    start = time.time()
    lat_cache: dict[str, float | None] = {}
    specs = {m: row_specs(m, args, data, args.out) for m in args.models}
    teachers: dict[str, Path] = {}
    held: list[Path] = []
    for model, row, method, seed in pending_runs(args, specs):
        run_dir = args.out / model / row / method / f"seed{seed}"
        if method == "two-step" and model not in teachers:
            teachers[model] = teacher_for(model, data, args, args.out)
        print(f"[{time.strftime('%H:%M:%S')}] {model} {row} {method} seed {seed}", flush=True)
        try:
            result = train_run(
                specs[model][row], data, run_dir, method, seed, args, teachers.get(model)
            )
        except RunInUseError:  # a parallel job is training this one: go on with the rest
            print("    held by another job; skipped", flush=True)
            held.append(run_dir)
            continue
        info = table_row(model, row, method, seed, specs[model][row], result, run_dir, args)
        save_json(
            run_dir / "table_row.json",
            {**info, "latency_ms": latency_ms(specs[model][row], lat_cache)},
        )
        save_json(job_path(args), job_meta(args, time.time() - start))
        publish(args)
        print(f"    top1 {info['top1']:.2f}", flush=True)
    if held:
        print(
            f"{len(held)} runs were held by other jobs and skipped; once those finish, run this "
            "command again to fill any gaps (finished runs are skipped)",
            flush=True,
        )
    return 0


def pending_runs(args: argparse.Namespace, specs: dict[str, dict[str, Any]]):
    """(model, row, method, seed) of every run without a ``table_row.json``, method- then
    seed-major, so an interrupted table still has every row for its early seeds."""
    seeds = args.only_seeds if args.only_seeds is not None else range(args.seeds)
    for method in args.methods:
        for seed in seeds:
            for model in args.models:
                for row in specs[model]:
                    done = args.out / model / row / method / f"seed{seed}" / "table_row.json"
                    if not done.exists():
                        yield model, row, method, seed


def table_row(
    model: str,
    row: str,
    method: str,
    seed: int,
    spec,
    result: dict[str, Any],
    run_dir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """What ``table_row.json`` records of one finished run (but its latency)."""
    from dwr.cost import count_cost

    cost = count_cost(spec)
    return {
        "model": model,
        "row": row,
        "method": method,
        "seed": seed,
        "top1": float(result["top1"]),
        "val_top1": best_val_top1(run_dir),
        "depths": list(spec.depths),
        "widths": list(spec.widths),
        "bops": cost.bops,
        "flops": cost.flops,
        "ops": cost.ops,
        "params": cost.params,
        "activations": cost.activations,
        "schedule": method_schedule(args, method),
        "trained_on": machine(),
        "train_seconds": result.get("seconds"),
        **({"search": search_config(args)} if row == args.dwr_row else {}),
    }


def remeasure_latency(args: argparse.Namespace, passes: int = 3) -> None:
    """Re-time every finished row's spec in one process, so latencies are comparable.

    Each spec is timed in ``passes`` interleaved rounds and keeps its minimum, so neither the
    first (cold) spec nor a burst of load on a shared machine decides a row.
    """
    from dwr.backbones import get_spec

    paths = sorted(args.out.glob("**/table_row.json"))
    rows = [json.loads(p.read_text()) for p in paths]
    # the authors' specs have their own stage layout (VGG-Small: 5 stages), so start from them
    specs = [
        get_spec(
            f"{r['model']}_dwr" if r["row"] == "authors_dwr" else r["model"],
            depths=r["depths"],
            widths=r["widths"],
        )
        for r in rows
    ]
    best: dict[str, float] = {}
    for _ in range(passes):
        cache: dict[str, float | None] = {}
        for spec in specs:
            ms = latency_ms(spec, cache)
            key = spec.to_json()
            if ms is not None:
                best[key] = min(ms, best.get(key, ms))
    for path, row, spec in zip(paths, rows, specs, strict=True):
        row["latency_ms"] = best.get(spec.to_json())
        save_json(path, row)


def publish(args: argparse.Namespace) -> None:
    """Rebuild docs/results.{json,png} and the table from every finished run on disk."""
    runs = [json.loads(p.read_text()) for p in sorted(args.out.glob("**/table_row.json"))]
    jobs = [json.loads(p.read_text()) for p in sorted((args.out / "jobs").glob("*.json"))]
    save_json(args.docs / "results.json", {"jobs": jobs, "runs": runs})
    table = summarise(runs)
    write_markdown_table(table, args.docs / "results_table.md")
    write_plot(table, args.docs / "results.png")


def job_path(args: argparse.Namespace) -> Path:
    """One record per job (set of backbones and methods), so parallel jobs do not collide."""
    name = f"{'+'.join(args.models)}.{'+'.join(args.methods)}"
    if args.only_seeds is not None:
        name += ".seed" + "+".join(map(str, args.only_seeds))
    if args.rows is not None:
        name += ".rows" + "+".join(args.rows)
    return args.out / "jobs" / f"{name}.json"


def job_meta(args: argparse.Namespace, wall_s: float) -> dict[str, Any]:
    return {
        "command": "python benchmarks/paper_table.py " + " ".join(sys.argv[1:]),
        "data_dir": str(args.data_dir),
        "epochs": args.epochs,
        "machine": machine(),
        "wall_s_this_job": round(wall_s),
    }


def machine() -> str:
    """CPU model and core count, plus the GPU when training ran on one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = f"{cpu}, {os.cpu_count()} cores"
    import torch

    if torch.cuda.is_available():
        name += f", {torch.cuda.get_device_name(0)}"
    return name


def save_json(path: Path, obj: Any) -> None:
    """Atomic (unique temp file, fsync, rename): parallel jobs may publish at once."""
    from dwr.files import atomic_write_json

    atomic_write_json(path, obj, indent=1)


# -- publishing -------------------------------------------------------------------------------
def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["row"], r["method"]), []).append(r)
    table = []
    for (model, row, method), rs in groups.items():
        accs = [r["top1"] for r in rs]
        vals = [r["val_top1"] for r in rs if r.get("val_top1") is not None]
        first = rs[0]
        table.append(
            {
                "model": model,
                "row": row,
                "method": method,
                "n": len(accs),
                "mean": statistics.mean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "val_mean": statistics.mean(vals) if len(vals) == len(accs) else None,
                **{
                    k: first[k]
                    for k in (
                        "depths",
                        "widths",
                        "bops",
                        "flops",
                        "ops",
                        "params",
                        "activations",
                        "latency_ms",
                    )
                },
            }
        )
    original = {t["model"]: t["latency_ms"] for t in table if t["row"] == "original"}
    for t in table:  # every row's latency against its original's, timed side by side
        base = original.get(t["model"])
        t["latency_ratio"] = t["latency_ms"] / base if t["latency_ms"] and base else None
    order = {r: i for i, r in enumerate(ROW_ORDER)}
    table.sort(key=lambda t: (t["model"], t["method"], order.get(t["row"], 99)))
    return table


def _g(x: float) -> str:
    return f"{x / 1e6:.1f}M" if x >= 1e6 else f"{x / 1e3:.1f}K"


def write_markdown_table(table, path: Path) -> None:
    lines = [
        "| backbone | method | row | depths | widths | top-1 % (mean ± std, n) | val top-1 % "
        "| BOPs | FLOPs | OPs | params | activations | latency ms | × original |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in table:
        lat = "–" if t["latency_ms"] is None else f"{t['latency_ms']:.2f}"
        ratio = "–" if t.get("latency_ratio") is None else f"{t['latency_ratio']:.2f}"
        val = "–" if t.get("val_mean") is None else f"{t['val_mean']:.2f}"
        lines.append(
            f"| {t['model']} | {t['method']} | {t['row']} | {t['depths']} | {t['widths']} | "
            f"{t['mean']:.2f} ± {t['std']:.2f} ({t['n']}) | {val} | {_g(t['bops'])} | "
            f"{_g(t['flops'])} | {_g(t['ops'])} | {_g(t['params'])} | {_g(t['activations'])} | "
            f"{lat} | {ratio} |"
        )
    from dwr.files import atomic_write

    atomic_write(path, "\n".join(lines) + "\n")


def write_plot(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    combos = sorted({(t["model"], t["method"]) for t in table})
    if not combos:
        return
    fig, axes = plt.subplots(len(combos), 2, figsize=(10, 3.6 * len(combos)), squeeze=False)
    markers = dict(zip(ROW_ORDER, "osD*Pv^", strict=True))
    for i, (model, method) in enumerate(combos):
        for j, (key, label) in enumerate((("bops", "BOPs"), ("activations", "activations"))):
            ax = axes[i][j]
            for t in table:
                if (t["model"], t["method"]) != (model, method):
                    continue
                ax.errorbar(
                    t[key],
                    t["mean"],
                    yerr=t["std"],
                    fmt=markers.get(t["row"], "x"),
                    capsize=3,
                    label=f"{t['row']} (n={t['n']})",
                )
            ax.set_xlabel(label)
            ax.set_ylabel("top-1 %")
            ax.set_title(f"{model}, {method}")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    import io

    from dwr.files import atomic_write

    png = io.BytesIO()
    fig.savefig(png, dpi=110, format="png")
    plt.close(fig)
    atomic_write(path, png.getvalue())


def cli(argv: list[str] | None = None) -> int:
    """``main`` as a command: a bad model name, data directory or schedule is one line on
    stderr and exit code 2, an interrupt exit code 130 (finished runs are kept; rerun to go on)."""
    from dwr.errors import DwrError

    try:
        return main(argv)
    except DwrError as exc:
        print(f"paper_table: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paper_table: interrupted; finished runs are kept, rerun to go on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
