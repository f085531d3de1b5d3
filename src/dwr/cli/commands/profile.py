"""``dwr profile``: calibrate the latency model (time the engine's ops on this CPU)."""

from __future__ import annotations

import argparse
import time

from dwr.cli.options import print_json, threads_type
from dwr.errors import DwrError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="time the engine's ops on this CPU (the latency model's calibration)"
    )
    p.add_argument(
        "--threads", type=threads_type, default=1, help="engine threads to calibrate (1)"
    )
    p.add_argument("--quick", action="store_true", help="a tiny grid (seconds; for tests)")
    p.add_argument("--out", metavar="FILE", help="write here instead of the user cache")
    p.add_argument("--json", action="store_true", help="print the table's key and path as JSON")
    p.set_defaults(func=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from dwr.cost import latency
    from dwr.engine import profile

    if args.threads < 1:
        raise DwrError(f"--threads must be >= 1, got {args.threads}")
    from dwr.files import check_output

    out = args.out or latency.table_path(args.threads)
    check_output(out, (), "--out")  # before minutes of timing, not after
    grid = "quick" if args.quick else "full"
    total = profile.count_points(profile.GRIDS[grid])
    columns = (
        TextColumn("{task.description:12s}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, transient=True, disable=args.json) as bar:
        task = bar.add_task("profiling", total=total)
        table = profile.measure(
            grid, args.threads, lambda what: bar.update(task, advance=1, description=what)
        )
    table["key"] = latency.runtime_key(args.threads)
    table["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = latency.save_table(table, args.out)
    info = {"path": str(path), **table["key"], "grid": grid, "seconds": table["seconds"]}
    if args.json:
        print_json(info)
        return 0
    points = sum(len(table[k]) for k in ("binary_conv", "float_conv", "head"))
    print(
        f"latency table: {path}\n  {info['cpu']}, kernel {info['isa']}, {args.threads} "
        f"thread(s), engine "
        f"{info['engine']}; {points} shapes in {time.perf_counter() - start:.0f} s ({grid} grid)"
    )
    return 0


def print_latency(report: dict) -> None:
    """Predicted engine time per op (``dwr summary --latency``; ``report`` from
    :meth:`dwr.cost.latency.LatencyReport.to_dict`)."""
    total = report["total_ms"]
    header = f"{'engine op':36s} {'kind':16s} {'output':>16s} {'ms':>9s} {'share':>6s}"
    print(f"\npredicted engine latency, batch 1, {report['threads']} thread(s)")
    print(header)
    print("-" * len(header))
    for row in report["layers"]:
        shape = "x".join(map(str, row["out"]))
        share = row["ms"] / total
        print(f"{row['name']:36s} {row['kind']:16s} {shape:>16s} {row['ms']:9.4f} {share:6.1%}")
    print("-" * len(header))
    print(f"total {total:.3f} ms (model call overhead {report['call_ms']:.3f} ms)")
