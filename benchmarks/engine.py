"""Benchmark of the bit-packed engine against PyTorch float32 (1 and 2 threads).

    python benchmarks/engine.py [--out benchmarks/results/engine.json] [--repeats 30]
    python benchmarks/engine.py --quick --sections throughput     # a few minutes

- layers: one binary 3x3 conv (stride 1, pad 1, C -> C) at the ImageNet ResNet-18 shapes
  64@56, 128@28, 256@14, 512@7 and the CIFAR ones 64@32, 128@16, 256@8, 512@4; the engine
  (packed input -> float output, BN folded) against ``F.conv2d`` float32 channels_last.
- models: birealnet18, birealnet18_dwr, resnet18_cifar, resnet18_cifar_dwr end to end
  (input 3x224x224 or 3x32x32): the engine against the same architecture in float32
  (channels_last) and the float-simulated BNN, batch 1.
- throughput: birealnet18 and resnet18_cifar at batch 1, 8 and 32, images/s of the engine and
  of PyTorch float32 (same architecture, channels_last) at the same batch. ``per_image_vs_b1``
  is the time of the same images as batch-1 calls over the batched call's, sampled
  alternately (equal work per sample); ``per_image_vs_b1_rounds`` compares with the batch-1
  row instead, whose short calls find an undisturbed moment more easily on a busy host.

- isas: every kernel ISA this CPU runs (``avx512``, ``avx2``, ``portable``) side by side at 1
  thread, batch 1, interleaved in rounds: the popcount peak of each ISA's GEMM arithmetic
  (XOR + popcount + add on registers), the binary layers in G binary MACs/s, and birealnet18 /
  resnet18_cifar end to end against PyTorch float32 and against the AVX2 path.

Times are the minimum over repeats (medians are in the JSON too): the machine may be shared.
``engine_sum_of_op_min_ms`` adds up each op's own minimum, i.e. an undisturbed engine run.
Every measurement runs in ``--rounds`` interleaved rounds (1 thread, 2 threads, 1 thread, ...)
and keeps its best, so a burst of load on a shared host cannot decide a ratio on its own.
The comparison with Larq Compute Engine is ``benchmarks/vs_lce.py`` (LCE timed in the same run);
the latency model's predictions against measured times are ``benchmarks/latency.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

import dwr.engine as engine
from dwr.backbones import create_model
from dwr.engine.bench import (
    measure,
    popcount_peak,
    set_threads,
    time_isas,
    time_layer,
    time_model,
)
from dwr.engine.cpu import cpu_info, describe_cpu
from dwr.files import atomic_write_json

LAYERS = [(64, 56), (128, 28), (256, 14), (512, 7), (64, 32), (128, 16), (256, 8), (512, 4)]
MODELS = ["birealnet18", "birealnet18_dwr", "resnet18_cifar", "resnet18_cifar_dwr"]
THROUGHPUT_MODELS = ["birealnet18", "resnet18_cifar"]
BATCHES = [1, 8, 32]
ISA_LAYERS = [(256, 14), (512, 7), (128, 28), (64, 56)]
ISA_MODELS = ["birealnet18", "resnet18_cifar"]


def host_gflops(repeats: int = 30) -> float:
    """One core's float32 matmul rate (512^3, best of ``repeats``): how fast the shared host is
    right now. Ratios measured side by side do not depend on it; comparisons with a time
    measured elsewhere (Larq Compute Engine's) do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    torch.set_num_threads(threads)
    return 2 * 512**3 / best / 1e9


def best_of(runs: list[dict]) -> dict:
    """The layer timing of the round with the fastest engine, its torch time the best too."""
    best = dict(min(runs, key=lambda r: r["engine_ms"]))
    best["torch_ms"] = min(r["torch_ms"] for r in runs)
    best["speedup"] = best["torch_ms"] / best["engine_ms"]
    return best


def best_model_timing(runs: list[dict]) -> dict:
    """Per runner and per op, the minimum over the interleaved rounds."""
    out = dict(runs[0])
    for key in ("engine", "torch_float", "torch_bnn"):
        out[key] = {
            "min_ms": min(r[key]["min_ms"] for r in runs),
            "median_ms": min(r[key]["median_ms"] for r in runs),
        }
    out["engine_ops_ms"] = {
        op: min(r["engine_ops_ms"][op] for r in runs) for op in runs[0]["engine_ops_ms"]
    }
    return out


def run_layers(args: argparse.Namespace, per_round: int) -> list[dict]:
    layers = []
    print(
        f"{'layer':>8s} {'thr':>3s} {'torch ms':>9s} {'engine ms':>9s} {'speedup':>8s} "
        f"{'G binary MAC/s':>15s}"
    )
    for c, s in LAYERS:
        runs: dict[int, list[dict]] = {t: [] for t in args.threads}
        for _ in range(args.rounds):
            for threads in args.threads:
                runs[threads].append(time_layer(c, s, threads, per_round))
        for threads in args.threads:
            r = best_of(runs[threads])
            layers.append(r)
            print(
                f"{r['shape']:>8s} {threads:3d} {r['torch_ms']:9.3f} {r['engine_ms']:9.3f} "
                f"{r['speedup']:7.1f}x {r['gbmacs']:15.0f}"
            )
    return layers


def run_models(args: argparse.Namespace, per_round: int) -> list[dict]:
    models = []
    print(
        f"\n{'model':20s} {'thr':>3s} {'float32 ms':>10s} {'BNN-sim ms':>10s} "
        f"{'engine ms':>9s} {'speedup':>8s} {'sum op-min ms':>13s} {'stem ms':>8s}"
    )
    for name in args.models:
        model = create_model(name).eval()
        comp = engine.convert(model)
        twin = create_model(model.spec.replace(binary=False))
        rounds: dict[int, list[dict]] = {t: [] for t in args.threads}
        for _ in range(args.rounds):
            for threads in args.threads:
                rounds[threads].append(time_model(model, comp, twin, 1, threads, per_round))
        for threads in args.threads:
            r = best_model_timing(rounds[threads])
            row = {
                "model": name,
                "threads": threads,
                "torch_float_ms": r["torch_float"]["min_ms"],
                "torch_bnn_ms": r["torch_bnn"]["min_ms"],
                "engine_ms": r["engine"]["min_ms"],
                "engine_median_ms": r["engine"]["median_ms"],
                "engine_sum_of_op_min_ms": sum(r["engine_ops_ms"].values()),
                "engine_stem_ms": r["engine_ops_ms"]["stem"],
                "torch_float_median_ms": r["torch_float"]["median_ms"],
                "speedup": r["torch_float"]["min_ms"] / r["engine"]["min_ms"],
                "speedup_vs_bnn": r["torch_bnn"]["min_ms"] / r["engine"]["min_ms"],
            }
            models.append(row)
            print(
                f"{name:20s} {threads:3d} {row['torch_float_ms']:10.2f} "
                f"{row['torch_bnn_ms']:10.2f} {row['engine_ms']:9.2f} {row['speedup']:7.1f}x "
                f"{row['engine_sum_of_op_min_ms']:13.2f} {row['engine_stem_ms']:8.2f}"
            )
    return models


def _float_ms(name: str, per_round: int, rounds: int) -> float:
    """PyTorch float32 (same architecture, channels_last), 1 thread, batch 1: best of rounds."""
    twin = create_model(name, binary=False).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, *twin.spec.input_size).contiguous(memory_format=torch.channels_last)
    set_threads(1)
    with torch.inference_mode():
        return min(measure(lambda: twin(x), per_round).min_ms for _ in range(rounds))


def run_isas(args: argparse.Namespace, per_round: int) -> list[dict]:
    """Each kernel ISA side by side (see the module docstring), 1 thread, batch 1."""
    set_threads(1)
    comps = {}
    for name in args.isa_models:
        model = create_model(name).eval()
        comps[name] = (engine.convert(model), torch.randn(1, *model.spec.input_size))

    def one_round() -> dict[str, float]:
        r = {"peak_s_per_tmac": 1e3 / popcount_peak()}
        for c, s in ISA_LAYERS:
            r[f"{c}@{s}"] = time_layer(c, s, 1, per_round)["engine_ms"]
        for name, (comp, x) in comps.items():
            r[name] = measure(lambda comp=comp, x=x: comp(x), per_round).min_ms
        return r

    best = time_isas(args.isas, one_round, args.rounds)
    floats = {name: _float_ms(name, per_round, args.rounds) for name in args.isa_models}
    rows = []
    for isa, b in best.items():
        row = {"isa": isa, "popcount_peak_gbmacs": 1e3 / b["peak_s_per_tmac"]}
        for c, s in ISA_LAYERS:
            ms = b[f"{c}@{s}"]
            row[f"{c}@{s}_ms"] = ms
            row[f"{c}@{s}_gbmacs"] = s * s * c * c * 9 / (ms * 1e-3) / 1e9
        for name in args.isa_models:
            row[f"{name}_ms"] = b[name]
            row[f"{name}_vs_float32"] = floats[name] / b[name]
            if "avx2" in best:
                row[f"{name}_vs_avx2"] = best["avx2"][name] / b[name]
        rows.append(row)
    _print_isas(rows, floats, args.isa_models)
    return rows


def _print_isas(rows: list[dict], floats: dict[str, float], models: list[str]) -> None:
    shapes = [f"{c}@{s}" for c, s in ISA_LAYERS]
    head = f"{'isa':9s} {'peak G/s':>9s} " + " ".join(f"{s + ' G/s':>11s}" for s in shapes)
    print("\n" + head + "".join(f" {m + ' ms':>20s}" for m in models))
    for r in rows:
        cells = " ".join(f"{r[s + '_gbmacs']:11.0f}" for s in shapes)
        ms = "".join(f" {r[m + '_ms']:8.2f} ({r[m + '_vs_float32']:4.1f}x fp32)" for m in models)
        print(f"{r['isa']:9s} {r['popcount_peak_gbmacs']:9.0f} {cells}{ms}")
    print(f"{'float32':9s} {'':9s} " + " " * (12 * len(shapes) - 1), end="")
    print("".join(f" {floats[m]:8.2f}{'':13s}" for m in models))


def time_batch(comp, twin: torch.nn.Module, x: torch.Tensor, threads: int, repeats: int) -> dict:
    """Min time (ms) of one call on the batch ``x`` (engine and PyTorch float32), and of the
    engine on the same images as ``len(x)`` batch-1 calls, alternating with the batched call:
    equal work per sample, so a burst of host load cannot favour the short calls."""
    set_threads(threads)
    singles = [x[i : i + 1].contiguous() for i in range(len(x))]
    comp(x)  # warm-up
    comp(singles[0])
    batched, one_by_one = [], []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        comp(x)
        batched.append((time.perf_counter() - t) * 1e3)
        if len(x) > 1:
            t = time.perf_counter()
            for s in singles:
                comp(s)
            one_by_one.append((time.perf_counter() - t) * 1e3)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        t = measure(lambda: twin(x_cl), repeats, warmup=1, budget_s=30.0)
    return {
        "engine_ms": min(batched),
        "engine_one_by_one_ms": min(one_by_one or batched),
        "torch_float_ms": t.min_ms,
    }


def run_throughput(args: argparse.Namespace, per_round: int) -> list[dict]:
    """Images/s at each batch, engine and float32 side by side, interleaved in rounds
    (every batch and thread count once per round), best round of each."""
    rows = []
    print(
        f"\n{'model':16s} {'thr':>3s} {'batch':>5s} {'float32 img/s':>13s} "
        f"{'engine img/s':>12s} {'vs float32':>10s} {'per image vs b1':>15s}"
    )
    for name in args.throughput_models:
        model = create_model(name).eval()
        comp = engine.convert(model)
        twin = create_model(model.spec.replace(binary=False)).eval()
        twin = twin.to(memory_format=torch.channels_last)
        g = torch.Generator().manual_seed(0)
        xs = {b: torch.randn(b, *model.spec.input_size, generator=g) for b in args.batches}
        runs: dict[tuple[int, int], list[dict]] = {}
        for _ in range(args.rounds):
            for threads in args.threads:
                for b in args.batches:
                    reps = max(3, per_round // b)
                    runs.setdefault((threads, b), []).append(
                        time_batch(comp, twin, xs[b], threads, reps)
                    )
        for threads in args.threads:
            base = None
            for b in args.batches:
                r = runs[(threads, b)]
                e = min(x["engine_ms"] for x in r)
                e1 = min(x["engine_one_by_one_ms"] for x in r)
                t = min(x["torch_float_ms"] for x in r)
                row = {
                    "model": name,
                    "threads": threads,
                    "batch": b,
                    "engine_ms": e,
                    "torch_float_ms": t,
                    "engine_images_per_s": b / e * 1e3,
                    "torch_float_images_per_s": b / t * 1e3,
                    "speedup": t / e,
                    "engine_one_by_one_ms": e1,
                    "per_image_vs_b1": e1 / e,
                    "engine_ms_per_round": [round(x["engine_ms"], 3) for x in r],
                    "torch_float_ms_per_round": [round(x["torch_float_ms"], 3) for x in r],
                }
                if b == 1:
                    base = row["engine_images_per_s"]
                row["per_image_vs_b1_rounds"] = row["engine_images_per_s"] / base if base else None
                rows.append(row)
                rel = f"{row['per_image_vs_b1']:14.2f}x"
                print(
                    f"{name:16s} {threads:3d} {b:5d} {row['torch_float_images_per_s']:13.1f} "
                    f"{row['engine_images_per_s']:12.1f} {row['speedup']:9.1f}x {rel}"
                )
    return rows


def summarize(args: argparse.Namespace, models: list[dict], throughput: list[dict]) -> dict:
    def ms(name: str, threads: int) -> float | None:
        for m in models:
            if m["model"] == name and m["threads"] == threads:
                return m["engine_ms"]
        return None

    summary = {}
    for base in ("birealnet18", "resnet18_cifar"):
        for threads in args.threads:
            a, b = ms(base, threads), ms(f"{base}_dwr", threads)
            if a and b:
                summary[f"{base}_dwr_vs_original_t{threads}"] = a / b
    if models and 1 in args.threads and 2 in args.threads:
        for name in args.models:
            summary[f"{name}_scaling_1_to_2"] = ms(name, 1) / ms(name, 2)
    for row in throughput:
        if row["batch"] == 1:
            continue
        key = f"{row['model']}_b{row['batch']}_t{row['threads']}"
        summary[f"{key}_vs_float32"] = row["speedup"]
        if row["per_image_vs_b1"] is not None:
            summary[f"{key}_per_image_vs_b1"] = row["per_image_vs_b1"]
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "engine.json"))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--sections",
        nargs="+",
        choices=["layers", "models", "throughput", "isas"],
        default=["layers", "models", "throughput", "isas"],
    )
    ap.add_argument("--isas", nargs="+", default=engine.supported_isas(), help="isas section")
    ap.add_argument("--isa-models", nargs="+", default=ISA_MODELS, help="isas section")
    ap.add_argument("--models", nargs="+", default=MODELS, help="models of the batch-1 table")
    ap.add_argument("--throughput-models", nargs="+", default=THROUGHPUT_MODELS)
    ap.add_argument("--batches", type=int, nargs="+", default=BATCHES, help="1 comes first")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 10 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats = 2, 10
    args.batches = sorted(set(args.batches) | {1})  # per image is measured against batch 1

    load_before = os.getloadavg()  # the machine may be shared: record how busy it was
    gflops_before = host_gflops()
    print(f"kernel: {engine.kernel_isa()}  {describe_cpu()}")
    per_round = max(5, args.repeats // args.rounds)
    layers = run_layers(args, per_round) if "layers" in args.sections else []
    models = run_models(args, per_round) if "models" in args.sections else []
    throughput = run_throughput(args, per_round) if "throughput" in args.sections else []
    isas = run_isas(args, per_round) if "isas" in args.sections else []
    summary = summarize(args, models, throughput)
    print("\n" + "\n".join(f"{k}: {v:.2f}x" for k, v in summary.items()))
    host = [round(gflops_before, 1), round(host_gflops(), 1)]
    print(f"host float32 GFLOP/s on one core, before/after: {host[0]} / {host[1]}")

    result = {
        "kernel": engine.kernel_isa(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "batch": "1 (layers, models); see throughput",
        "timing": "min over repeats (ms); medians alongside",
        "rounds": args.rounds,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "host_matmul_gflops_before_after": host,
        "layers": layers,
        "models": models,
        "throughput": throughput,
        "isas": isas,
        "cpu": cpu_info(),
        "summary": summary,
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
