"""The engine's stem precisions, f32, bf16 and int8, side by side: speed and accuracy cost.

    python benchmarks/stem_precision.py [--rounds 5] [--repeats 30]
        [--checkpoint CKPT ...] [--cifar DIR] [--images 1000]
        [--out benchmarks/results/stem_precision.json]

- speed: ``birealnet18`` (224x224, batch 1, one thread), end to end and the stem op alone
  (7x7 conv, BN folded, 3x3 max-pool), every precision timed in every round, the order
  alternating; each figure is the minimum over repeats and rounds (the host may be shared).
- accuracy: top-1 agreement of each opt-in engine's argmax with the f32 engine's and their
  largest |logit difference|,
  on ``birealnet18`` and ``resnet20_cifar`` with trained-like random weights
  (tests/engine/engine_helpers.py ``randomize``: BN statistics, RSign/RPReLU shifts) over
  Gaussian inputs (or CIFAR test images for the CIFAR model with ``--cifar``), and on each
  ``--checkpoint`` (a model trained on CIFAR-10) over the CIFAR test images of ``--cifar``,
  with each engine's top-1 accuracy against the labels. On CIFAR images a baseline beside
  it: the f32 engine against itself on the images jittered by -1, 0 or +1 of the 255 pixel
  levels per value (BNNs can be that sensitive to any perturbation of their input).

Nothing here is hard-coded: every number printed and written is measured in this run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import dwr.engine as engine
from dwr.backbones import create_model
from dwr.engine import _kernels
from dwr.engine.cpu import cpu_info, describe_cpu
from dwr.engine.ops import STEM_PRECISIONS, State
from dwr.errors import DwrError
from dwr.files import atomic_write_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "engine"))
from engine_helpers import randomize  # noqa: E402 - the tests' trained-like weights

OUT = Path(__file__).resolve().parent / "results" / "stem_precision.json"
OPT_IN = [p for p in STEM_PRECISIONS if p != "f32"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (5)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per round (30)")
    p.add_argument("--checkpoint", action="append", default=[], help="CIFAR-10 checkpoint")
    p.add_argument("--cifar", type=Path, help="CIFAR-10 directory (its test_batch is used)")
    p.add_argument("--images", type=int, default=1000, help="images per accuracy row (1000)")
    p.add_argument("--out", type=Path, default=OUT, help=f"JSON results ({OUT.name})")
    args = p.parse_args(argv)
    if min(args.rounds, args.repeats, args.images) < 1:
        p.error("--rounds, --repeats and --images must be at least 1")
    return args


def best_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm: the first call repacks weights and touches buffers
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def engines(model: torch.nn.Module) -> dict[str, engine.CompiledModel]:
    return {p: engine.convert(model, stem_precision=p) for p in STEM_PRECISIONS}


def time_birealnet18(rounds: int, repeats: int) -> dict[str, Any]:
    """End-to-end and stem-op minima of every precision, interleaved over ``rounds``."""
    engine.set_num_threads(1)
    comps = engines(randomize(create_model("birealnet18")))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    best: dict[str, dict[str, float]] = {
        p: {"end_to_end_ms": np.inf, "stem_ms": np.inf} for p in comps
    }
    for r in range(rounds):
        order = list(comps) if r % 2 == 0 else list(reversed(comps))
        for p in order:
            comp, stem, row = comps[p], comps[p].ops[0], best[p]
            ms = best_ms(lambda c=comp: c(x), repeats)
            row["end_to_end_ms"] = min(row["end_to_end_ms"], ms)
            ms = best_ms(lambda s=stem: s.run(State(x=x, nchw=True)), repeats)
            row["stem_ms"] = min(row["stem_ms"], ms)
    return best


def logits_of(comp: engine.CompiledModel, x: np.ndarray) -> np.ndarray:
    return np.concatenate([comp(x[i : i + 100]) for i in range(0, len(x), 100)])


def agreement(comps: dict, x: np.ndarray, labels=None, level=None) -> dict[str, Any]:
    """Argmax agreement and max |logit difference| of each opt-in engine (keys suffixed
    ``_bf16``, ``_int8``) against the f32 one;
    with ``level`` (one pixel level, 1/255, in normalised units per channel), also the f32
    engine's agreement with itself on images jittered by -1, 0 or +1 level per value: how
    much a perturbation below the images' own quantisation moves these predictions."""
    logits = {p: logits_of(c, x) for p, c in comps.items()}
    a = logits["f32"]
    row: dict[str, Any] = {"images": len(x), "max_abs_logit": float(np.abs(a).max())}
    for p in OPT_IN:
        row[f"top1_agreement_{p}"] = float((a.argmax(1) == logits[p].argmax(1)).mean())
        row[f"max_abs_logit_diff_{p}"] = float(np.abs(a - logits[p]).max())
    if level is not None:
        steps = np.random.default_rng(2).integers(-1, 2, x.shape).astype(np.float32)
        jittered = (x + steps * np.asarray(level, np.float32)[None, :, None, None]).astype(x.dtype)
        row["top1_agreement_f32_pixel_jitter"] = float(
            (logits_of(comps["f32"], jittered).argmax(1) == a.argmax(1)).mean()
        )
    if labels is not None:
        for p, out in logits.items():
            row[f"top1_accuracy_{p}"] = float((out.argmax(1) == labels).mean())
    return row


def pixel_level(std) -> np.ndarray:
    """One of 255 pixel levels in the normalised units of each channel."""
    return 1 / (255 * np.asarray(std, np.float32))


def cifar_test(root: Path, mean, std, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` CIFAR-10 test images, normalised, and their labels."""
    from dwr.data.cifar import cifar_bundle

    split = cifar_bundle("cifar10", root, False).splits["test"]
    x = split.images[:n].float().numpy() / 255.0
    m, s = (np.asarray(v, np.float32)[None, :, None, None] for v in (mean, std))
    return ((x - m) / s).astype(np.float32), split.labels[:n].numpy()


def accuracy_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    rows = []
    for name, side in (("birealnet18", 224), ("resnet20_cifar", 32)):
        n = min(args.images, 200) if side == 224 else args.images
        x, source = rng.standard_normal((n, 3, side, side)).astype(np.float32), "gaussian"
        level = None
        if side == 32 and args.cifar:  # random weights: agreement only, accuracy means nothing
            from dwr.data.cifar import CIFAR

            x, _ = cifar_test(args.cifar, CIFAR["cifar10"].mean, CIFAR["cifar10"].std, n)
            source, level = "cifar10 test", pixel_level(CIFAR["cifar10"].std)
        comps = engines(randomize(create_model(name)))
        row = agreement(comps, x, level=level)
        rows.append({"model": f"{name} (trained-like random)", "inputs": source, **row})
    for path in args.checkpoint:
        rows.append(checkpoint_row(Path(path), args))
    return rows


def checkpoint_row(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from dwr.train.checkpoint import load_checkpoint, read_checkpoint

    if not args.cifar:
        raise DwrError("--checkpoint needs --cifar (the CIFAR-10 test images)")
    meta = read_checkpoint(path)["dwr"]
    x, labels = cifar_test(args.cifar, meta["mean"], meta["std"], args.images)
    comps = engines(load_checkpoint(path))
    row = agreement(comps, x, labels, pixel_level(meta["std"]))
    return {"model": f"{meta['spec'].get('name')} ({path})", "inputs": "cifar10 test", **row}


def print_row(r: dict[str, Any]) -> None:
    """One accuracy row: each opt-in precision's agreement, then the f32 yardsticks."""
    print(
        f"{r['model']}, {r['images']} {r['inputs']} images (max |logit| {r['max_abs_logit']:.3g})"
    )
    for p in OPT_IN:
        acc = ""
        if f"top1_accuracy_{p}" in r:
            acc = f"; top-1 f32 {r['top1_accuracy_f32']:.2%} {p} {r[f'top1_accuracy_{p}']:.2%}"
        print(
            f"  {p}: argmax agrees on {r[f'top1_agreement_{p}']:.2%}, max |logit diff| "
            f"{r[f'max_abs_logit_diff_{p}']:.3g}{acc}"
        )
    if "top1_agreement_f32_pixel_jitter" in r:
        print(f"  f32 vs itself, +-1 pixel level: {r['top1_agreement_f32_pixel_jitter']:.2%}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    info = cpu_info()
    print(describe_cpu(info))
    print(
        f"kernel {engine.kernel_isa()}, native bf16 stem: {_kernels.bf16_native()}, "
        f"native int8 stem: {_kernels.int8_native()}"
    )
    speed = time_birealnet18(args.rounds, args.repeats)
    print(
        f"\nbirealnet18 224x224, batch 1, 1 thread (min of {args.rounds} rounds x {args.repeats})"
    )
    print(f"{'stem':6s} {'end to end ms':>14s} {'stem op ms':>11s}")
    for p, row in speed.items():
        print(f"{p:6s} {row['end_to_end_ms']:14.3f} {row['stem_ms']:11.3f}")
    for p in OPT_IN:
        ratio = {k: speed["f32"][k] / speed[p][k] for k in speed["f32"]}
        print(f"{p} vs f32: stem {ratio['stem_ms']:.2f}x, end to end {ratio['end_to_end_ms']:.2f}x")
    rows = accuracy_rows(args)
    print("\naccuracy cost (each opt-in engine against the f32 engine)")
    for r in rows:
        print_row(r)
    result = {
        "cpu": info,
        "kernel": engine.kernel_isa(),
        "native_bf16": bool(_kernels.bf16_native()),
        "native_int8": bool(_kernels.int8_native()),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "birealnet18": speed,
        "accuracy": rows,
    }
    atomic_write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
