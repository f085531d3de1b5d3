"""How a batch should use the engine's threads: whole chunks per thread, or every layer split.

At batch > 1 with several threads, ``CompiledModel`` can share the batch's chunks out over
the threads, each running whole chunks with its kernels on one core (``batch_split =
"images"``, the default), or run one chunk at a time with every layer split across all
threads (``"pixels"``). Both give the same logits bit for bit (``tests/engine``); this times
them side by side: interleaved rounds, alternating which goes first, the same input.

    python benchmarks/batch_split.py --threads 2 --rounds 24

prints a table and writes ``benchmarks/results/batch_split.json``. "pixels / images" is the
per-image time ratio of each round (above 1: sharing out whole chunks is faster).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

import dwr
from dwr.backbones import build
from dwr.engine import convert, set_num_threads
from dwr.files import atomic_write_json

CASES = (("birealnet18", 8), ("resnet18_cifar", 32))
MODES = ("images", "pixels")


def time_case(name: str, batch: int, rounds: int) -> dict[str, Any]:
    """Per-image ms of each mode in every round, and the per-round ratios."""
    spec = dwr.get_spec(name)
    model = convert(build(spec).eval())
    x = np.random.default_rng(0).standard_normal((batch, *spec.input_size)).astype(np.float32)
    model(x)  # warm-up: first-call allocations
    ms: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            model.batch_split = mode
            t0 = time.perf_counter()
            model(x)
            ms[mode].append((time.perf_counter() - t0) / batch * 1e3)
    ratios = [p / i for p, i in zip(ms["pixels"], ms["images"], strict=True)]
    return {
        "model": name,
        "batch": batch,
        "chunk": model.chunk_size(*spec.input_size[1:]),
        "ms_per_image": {m: {"min": min(v), "median": statistics.median(v)} for m, v in ms.items()},
        "ratio_pixels_over_images": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        },
    }


def print_table(cases: list[dict[str, Any]], threads: int) -> None:
    print(f"{threads} threads; ms per image (min / median over rounds)")
    print(f"{'model':16s} {'batch':>5s} {'images':>15s} {'pixels':>15s} {'pixels/images':>22s}")
    for c in cases:
        cell = {m: f"{c['ms_per_image'][m]['min']:.2f} / {c['ms_per_image'][m]['median']:.2f}"
                for m in MODES}  # fmt: skip
        r = c["ratio_pixels_over_images"]
        ratio = f"{r['median']:.3f}x ({r['min']:.2f}-{r['max']:.2f})"
        print(f"{c['model']:16s} {c['batch']:5d} {cell['images']:>15s} {cell['pixels']:>15s} "
              f"{ratio:>22s}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--out", default="benchmarks/results/batch_split.json")
    args = p.parse_args(argv)
    if args.threads < 2 or args.rounds < 1:
        print("batch_split: error: needs --threads >= 2 and --rounds >= 1", file=sys.stderr)
        return 2
    set_num_threads(args.threads)
    before = round(os.getloadavg()[0], 2)
    cases = [time_case(name, batch, args.rounds) for name, batch in CASES]
    print_table(cases, args.threads)
    atomic_write_json(
        args.out,
        {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "rounds": args.rounds,
            "load_average_1min_before_after": [before, round(os.getloadavg()[0], 2)],
            "cases": cases,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
