"""Speed on paper for ARM: Bi-Real-18 (224x224, batch 1, one thread) on the NEON kernels,
counted instruction by instruction under qemu-aarch64, then priced on a Cortex-A76 and A72.

Builds csrc/engine/tests/bireal18_shapes.cpp for aarch64 (-O3, static), runs it under
``qemu-aarch64 -singlestep -d nochain,exec`` (one trace line per executed instruction), and
classes every executed instruction from the disassembly: vector/FP (the two ASIMD pipes),
load, store, other. Each kernel's cycles are the largest of its vector ops / 2, its loads and
stores over the load/store pipes and its instructions over the decode width: an issue bound
that ignores latencies, cache misses and branch mispredictions (docs/engine.md, ARM section).

    python benchmarks/arm_count.py [--isa neon|portable]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "csrc" / "engine"
SOURCES = ["tests/bireal18_shapes.cpp", "conv.cpp", "pack.cpp", "float_conv.cpp",
           "dispatch.cpp", "threads.cpp", "kernels/portable.cpp", "kernels/neon.cpp",
           "kernels/avx2.cpp", "kernels/avx512.cpp"]  # fmt: skip
# Which kernel a function belongs to: the first pattern found in its (mangled) name.
GROUPS = [("popgemm", "binary GEMM"), ("epilogue", "float epilogue"), ("pack_", "sign packing"),
          ("conv_block", "float conv"), ("finish_block", "float conv"),
          ("float_conv", "float conv"), ("max_", "max pool"), ("avg_", "avg pool"),
          ("dense", "dense"), ("binary_conv", "im2col + borders"), ("mem", "copies")]  # fmt: skip
# Work a deployed model does not repeat per image: the driver's random weights, the weight
# repacking at load, start-up. Counted, but not priced.
SETUP = ("main", "random", "mersenne", "normal_distribution", "generate_canonical", "logf",
         "prepare_weight", "_start", "_dl_", "libc", "tunables", "malloc", "_Znwm")  # fmt: skip
# (name, GHz, ASIMD pipes, load/store pipes, decode width)
CORES = [("Cortex-A76", 2.4, 2, 2, 4), ("Cortex-A72", 1.5, 2, 2, 3)]


def build(tmp: Path) -> Path:
    exe = tmp / "bireal18_shapes"
    flags = ["-std=c++17", "-O3", "-static", "-ffp-contract=off", "-fno-math-errno", "-pthread"]
    cmd = ["aarch64-linux-gnu-g++", *flags, f"-I{ENGINE}", *(str(ENGINE / s) for s in SOURCES)]
    subprocess.run([*cmd, "-o", str(exe)], check=True)
    return exe


def disassembly(exe: Path) -> dict[int, tuple[str, str, str]]:
    """address -> (function, mnemonic, operands) for every instruction of the binary."""
    text = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", str(exe)],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip
    out, func = {}, "?"
    for line in text.splitlines():
        if m := re.match(r"^[0-9a-f]+ <(.+)>:$", line):
            func = m.group(1)
        elif m := re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line):
            out[int(m.group(1), 16)] = (func, m.group(2), m.group(3))
    return out


def executed(exe: Path, isa: str) -> collections.Counter:
    """How often each instruction address ran (qemu's exec trace, one instruction per block)."""
    qemu = ["qemu-aarch64", "-singlestep", "-d", "nochain,exec", "-D", "/dev/stderr"]
    awk = ["awk", '/^Trace/ { split($4, a, "/"); n[a[2]]++ } END { for (p in n) print p, n[p] }']
    trace = subprocess.Popen([*qemu, str(exe), isa], stderr=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)  # fmt: skip
    counts = subprocess.run(awk, stdin=trace.stderr, capture_output=True, text=True, check=True)
    trace.wait()
    out = collections.Counter()
    for line in counts.stdout.splitlines():
        if len(fields := line.split()) == 2:  # (a trace line of another shape has no pc)
            out[int(fields[0], 16)] = int(fields[1])
    return out


def kind(mnemonic: str, operands: str) -> str:
    """'load', 'store', 'vector' (the ASIMD/FP pipes; LD1R counts as load and vector) or
    'other'."""
    if mnemonic.startswith("ld"):
        return "load+vector" if mnemonic.startswith("ld1r") else "load"
    if mnemonic.startswith("st"):
        return "store"
    if re.search(r"\bv\d+\.|\b[bhsdq]\d+\b", operands) and mnemonic not in ("fmov", "umov"):
        return "vector"
    return "other"


def group(func: str) -> str:
    if any(pattern in func for pattern in SETUP):
        return "setup (not priced)"
    return next((g for pattern, g in GROUPS if pattern in func), "other")


def tally(dis, runs) -> dict[str, collections.Counter]:
    """Per kernel group: executed instructions, vector ops, loads, stores."""
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for pc, n in runs.items():
        func, mnemonic, operands = dis.get(pc, ("?", "?", ""))
        row, k = out[group(func)], kind(mnemonic, operands)
        row["instructions"] += n
        row["vector"] += n * ("vector" in k)
        row["load/store"] += n * (k in ("load", "store", "load+vector"))
    return out


def report(rows: dict[str, collections.Counter]) -> None:
    names = [c[0] for c in CORES]
    print(f"{'kernel':18} {'instr (M)':>10} {'vector (M)':>11} {'ld/st (M)':>10}"
          + "".join(f" {n + ' ms':>14}" for n in names))  # fmt: skip
    total = collections.Counter()
    for name, row in sorted(rows.items(), key=lambda r: -r[1]["instructions"]):
        if name.startswith("setup"):
            print(f"{name:18} {row['instructions'] / 1e6:10.2f}")
            continue
        ms = []
        for core, ghz, vpipes, lpipes, width in CORES:
            cycles = max(row["vector"] / vpipes, row["load/store"] / lpipes,
                         row["instructions"] / width)  # fmt: skip
            ms.append(cycles / ghz / 1e6)
            total[core] += cycles / ghz / 1e6
        print(
            f"{name:18} {row['instructions'] / 1e6:10.2f} {row['vector'] / 1e6:11.2f} "
            f"{row['load/store'] / 1e6:10.2f}" + "".join(f" {m:14.2f}" for m in ms)
        )
    print(f"{'total':18} {'':10} {'':11} {'':10}" + "".join(f" {total[n]:14.2f}" for n in names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", default="neon", choices=["neon", "portable"])
    ap.add_argument("--top", type=int, default=0, help="also list the N busiest functions")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        dis, runs = disassembly(exe), executed(exe, args.isa)
    report(tally(dis, runs))
    per_func = collections.Counter()
    for pc, n in runs.items():
        per_func[dis.get(pc, ("?",))[0]] += n
    for func, n in per_func.most_common(args.top):
        print(f"{n / 1e6:10.2f} M  {func}")


if __name__ == "__main__":
    main()
