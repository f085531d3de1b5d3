"""The popcount peak of each kernel ISA against our binary layers, in G binary MACs/s.

    python benchmarks/popcount_peak.py [--out benchmarks/results/popcount_peak.json]

- peak: the ISA's GEMM arithmetic alone (XOR + popcount + add, the micro-kernel's tile of
  accumulators, on registers, no loads; ``_kernels.popcount_peak``): AVX-512 XOR + VPOPCNTQ +
  add, AVX2's nibble lookup on split operands, portable 64-bit popcount;
- layers: one binary 3x3 conv at 256@14 and 512@7 (packed input -> float output);
- birealnet18's binary units: their binary MACs over the sum of their own minimum times
  (``op_profile``), 1 thread, batch 1, 224x224.

Each figure is also given as a fraction of its ISA's peak. Rounds interleave the ISAs, and
every figure is the best of its rounds (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

import dwr.engine as engine
from dwr.backbones import create_model
from dwr.engine.bench import op_profile, popcount_peak, set_threads, time_isas, time_layer
from dwr.engine.cpu import cpu_info, describe_cpu
from dwr.engine.ops import BinaryConv
from dwr.files import atomic_write_json

LAYERS = [(256, 14), (512, 7)]


def binary_macs(comp, h: int, w: int) -> dict[str, int]:
    """Binary MACs of each binary conv op of ``comp`` at an ``h x w`` input."""
    return {
        op.name: oh * ow * op.out_channels * op.in_channels * op.k * op.k
        for op, oh, ow, _ in comp._sizes(h, w)
        if isinstance(op, BinaryConv)
    }


def run(args: argparse.Namespace) -> list[dict]:
    set_threads(1)
    model = create_model("birealnet18").eval()
    comp = engine.convert(model)
    _, h, w = model.spec.input_size
    macs = binary_macs(comp, h, w)
    x = torch.randn(1, 3, h, w)

    def one_round() -> dict[str, float]:
        r = {"peak": 1e3 / popcount_peak()}
        for c, s in LAYERS:
            r[f"{c}@{s}"] = time_layer(c, s, 1, args.repeats)["engine_ms"]
        ops = op_profile(comp, x, args.repeats)
        r["birealnet18_binary_ms"] = sum(ops[name] for name in macs)
        return r

    rows = []
    for isa, b in time_isas(args.isas, one_round, args.rounds).items():
        peak = 1e3 / b["peak"]
        row = {"isa": isa, "peak_gbmacs": peak}
        for c, s in LAYERS:
            rate = s * s * c * c * 9 / (b[f"{c}@{s}"] * 1e-3) / 1e9
            row[f"{c}@{s}_gbmacs"], row[f"{c}@{s}_of_peak"] = rate, rate / peak
        rate = sum(macs.values()) / (b["birealnet18_binary_ms"] * 1e-3) / 1e9
        row["birealnet18_binary_ms"] = b["birealnet18_binary_ms"]
        row["birealnet18_binary_gbmacs"], row["birealnet18_binary_of_peak"] = rate, rate / peak
        rows.append(row)
        print(
            f"{isa:9s} peak {peak:6.0f} G/s  "
            + "  ".join(
                f"{c}@{s} {row[f'{c}@{s}_gbmacs']:5.0f} ({row[f'{c}@{s}_of_peak']:4.0%})"
                for c, s in LAYERS
            )
            + f"  birealnet18 binary units {rate:5.0f} ({rate / peak:4.0%},"
            f" {b['birealnet18_binary_ms']:.2f} ms)"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "popcount_peak.json"))
    ap.add_argument("--isas", nargs="+", default=engine.supported_isas())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    print(describe_cpu())
    rows = run(args)
    atomic_write_json(args.out, {"cpu": cpu_info(), "threads": 1, "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
