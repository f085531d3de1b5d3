"""Our engine against Larq Compute Engine on Bi-Real-18, measured side by side in one run.

    python benchmarks/vs_lce.py --lce-python /work/lce-venv/bin/python [--rounds 3]

The LCE side runs in its own venv (its TensorFlow cannot share a process with our torch):
    python3.11 -m venv /work/lce-venv
    /work/lce-venv/bin/pip install tensorflow-cpu==2.16.2 tf-keras==2.16.0 larq==0.14.0 \
        larq-compute-engine==0.16.0 zookeeper==1.4.0 protobuf==3.20.3 numpy==1.26.4
    /work/lce-venv/bin/pip install --no-deps larq-zoo==2.4.0
(checked 2026-12-04 on Python 3.11: larq-zoo's imports need protobuf 3.20, which the pins
above keep; a newer protobuf breaks them)
``benchmarks/lce_worker.py`` (run by that Python with ``TF_USE_LEGACY_KERAS=1``) builds
larq-zoo's ``BiRealNet`` with random weights, converts it with ``convert_keras_model`` and
times LCE's interpreter on request, so the rounds interleave: in each round and for each
thread count, our ``birealnet18`` (batch 1, 224x224), then LCE with its default binary-conv
kernel, with its indirect BGEMM kernel, and with that kernel plus TFLite's XNNPack delegate
for the float layers. While one side runs the other waits on a pipe.

Times are the minimum over each round's repeats; the table shows the best round of each and
the JSON (``benchmarks/results/vs_lce.json``) every round's times and ratios (LCE ms / our
ms). LCE's x86 build is the pip wheel's: its interpreter warns it is tuned for ARM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

import torch

import dwr.engine as engine
from dwr.backbones import create_model
from dwr.engine.bench import measure, set_threads
from dwr.files import atomic_write_json

KERNELS = ("default", "indirect_bgemm", "indirect_bgemm_xnnpack")  # see lce_worker.py
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lce_worker.py")


class LceWorker:
    """The LCE process: one JSON request per line in, one reply per line out."""

    def __init__(self, python: str, threads: list[int]) -> None:
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [python, WORKER, *map(str, threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"vs_lce: the LCE worker exited (code {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"vs_lce: the LCE worker failed: {reply['error']}")
        return reply

    def time(self, threads: int, kernel: str, repeats: int) -> dict:
        req = {"threads": threads, "kernel": kernel, "repeats": repeats}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lce-python", required=True, help="python of the venv with LCE")
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "vs_lce.json"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20, help="our runs per round")
    ap.add_argument("--lce-repeats", type=int, default=8, help="LCE runs per round and kernel")
    args = ap.parse_args(argv)
    if not os.access(args.lce_python, os.X_OK):
        print(
            f"vs_lce: error: --lce-python {args.lce_python} is not an executable", file=sys.stderr
        )
        return 2

    load_before = os.getloadavg()
    print("starting the LCE worker (builds and converts BiRealNet; a minute or two)...")
    lce = LceWorker(args.lce_python, args.threads)
    print(f"LCE: {lce.info['model']}, {lce.info['params']:,} params, {lce.info['versions']}")
    model = create_model("birealnet18").eval()
    ours = engine.convert(model)
    x = torch.randn(1, *model.spec.input_size)
    print(f"ours: birealnet18, kernel {engine.kernel_isa()}")

    rounds = []
    for r in range(args.rounds):
        for t in args.threads:
            set_threads(t)
            mine = measure(lambda: ours(x), args.repeats).to_dict()
            row = {"round": r, "threads": t, "dwr_ms": mine["min_ms"]}
            for kernel in KERNELS:
                theirs = lce.time(t, kernel, args.lce_repeats)
                row[f"lce_{kernel}_ms"] = theirs["min_ms"]
                row[f"ratio_{kernel}"] = theirs["min_ms"] / mine["min_ms"]
            rounds.append(row)
            print(
                f"round {r} threads {t}: dwr {row['dwr_ms']:.2f} ms, "
                + ", ".join(f"LCE {k} {row[f'lce_{k}_ms']:.1f} ms" for k in KERNELS)
            )
    lce.close()

    print(
        f"\n{'threads':>7s} {'dwr ms':>8s} "
        + " ".join(f"{'LCE ' + k + ' ms':>22s}" for k in KERNELS)
        + " "
        + " ".join(f"{'x vs ' + k:>20s}" for k in KERNELS)
        + "  (best round; ratio per round)"
    )
    summary = {}
    for t in args.threads:
        mine = [row for row in rounds if row["threads"] == t]
        best = {"dwr_ms": min(row["dwr_ms"] for row in mine)}
        for k in KERNELS:
            best[f"lce_{k}_ms"] = min(row[f"lce_{k}_ms"] for row in mine)
            best[f"ratio_{k}"] = best[f"lce_{k}_ms"] / best["dwr_ms"]
            best[f"ratio_{k}_per_round"] = [round(row[f"ratio_{k}"], 2) for row in mine]
            best[f"ratio_{k}_median_of_rounds"] = statistics.median(
                row[f"ratio_{k}"] for row in mine
            )
        summary[f"threads_{t}"] = best
        print(
            f"{t:7d} {best['dwr_ms']:8.2f} "
            + " ".join(f"{best[f'lce_{k}_ms']:22.1f}" for k in KERNELS)
            + " "
            + " ".join(
                f"{best[f'ratio_{k}']:6.2f}x {best[f'ratio_{k}_per_round']!s:>13s}" for k in KERNELS
            )
        )
    result = {
        "ours": {"model": "birealnet18", "kernel": engine.kernel_isa(), "torch": torch.__version__},
        "lce": lce.info,
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "batch": 1,
        "timing": "min over each round's repeats (ms); ratio = LCE ms / dwr ms",
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "rounds": rounds,
        "summary": summary,
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
