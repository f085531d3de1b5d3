"""Images/s of one training step (forward, cross-entropy, backward, SGD step) on CPU.

Binary backbones against the same architecture with ``--float``, side by side, eager and
(optionally) ``torch.compile``d. Prints a table and writes JSON.

    python benchmarks/train_step.py [--models resnet20_cifar resnet18_cifar] [--batch-size 128]
        [--steps 5] [--compile] [--json train_step.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch
import torch.nn.functional as F

import dwr


def bench(name: str, binary: bool, compiled: bool, batch: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = dwr.create_model(name, float=not binary)
    model.train()
    fwd = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    c, h, w = model.spec.input_size
    x = torch.randn(batch, c, h, w)
    y = torch.randint(0, model.spec.num_classes, (batch,))

    def step() -> None:
        loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    best = min(times)
    median = sorted(times)[len(times) // 2]
    return {
        "model": name,
        "binary": binary,
        "compiled": compiled,
        "batch_size": batch,
        "steps": steps,
        "images_per_s": round(batch / median, 1),
        "images_per_s_best": round(batch / best, 1),
        "step_ms_median": round(1000 * median, 1),
        "warmup_s": round(warm_s, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet20_cifar", "resnet18_cifar"])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default="train_step.json", help="where to write the results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        for compiled in (False, True) if args.compile else (False,):
            pair = {}
            for binary in (False, True):
                r = bench(name, binary, compiled, args.batch_size, args.steps, args.warmup)
                print(f"  measured {r}", file=sys.stderr, flush=True)
                pair[binary] = r
                rows.append(r)
            ratio = pair[False]["images_per_s"] / pair[True]["images_per_s"]
            pair[True]["float_over_binary"] = round(ratio, 2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    header = (
        f"{'model':16s} {'compile':7s} {'float img/s':>11s} {'binary img/s':>12s} {'float/bin':>9s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if r["binary"]:
            f = next(
                q
                for q in rows
                if q["model"] == r["model"] and q["compiled"] == r["compiled"] and not q["binary"]
            )
            print(
                f"{r['model']:16s} {str(r['compiled']):7s} {f['images_per_s']:11.1f} "
                f"{r['images_per_s']:12.1f} {r['float_over_binary']:9.2f}x"
            )
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
    with open(args.json, "w") as fh:
        json.dump({"meta": meta, "results": rows}, fh, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
