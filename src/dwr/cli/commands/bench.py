"""``dwr bench NAME|CHECKPOINT``: engine latency against PyTorch float32 and the simulated BNN."""

from __future__ import annotations

import argparse
import os

from dwr.cli.options import print_json
from dwr.errors import DwrError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency of the bit-packed engine against PyTorch")
    p.add_argument("model", metavar="NAME|CHECKPOINT", help="registered model or checkpoint file")
    p.add_argument("--threads", type=int, default=1, help="threads (engine and PyTorch)")
    p.add_argument("--batch", type=int, default=1, help="images per call")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per runner")
    p.add_argument("--size", type=int, help="input side (default: the spec's, 224 or 32)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_bench)


def _load(arg: str):
    from dwr.backbones import create_model

    if os.path.exists(arg):
        try:
            from dwr.train import load_checkpoint
        except ImportError as exc:
            raise DwrError(
                f"cannot load checkpoint {arg!r}: dwr.train is unavailable ({exc})"
            ) from None
        return load_checkpoint(arg).eval()
    if os.sep in arg or arg.endswith((".ckpt", ".pt", ".pth")):
        raise DwrError(f"checkpoint {arg!r} does not exist")
    return create_model(arg).eval()


def run_bench(args: argparse.Namespace) -> int:
    if args.threads < 1 or args.batch < 1 or args.repeats < 1:
        raise DwrError("--threads, --batch and --repeats must be >= 1")
    if args.size is not None and args.size < 1:
        raise DwrError("--size must be >= 1")
    import dwr.engine as engine_mod
    from dwr.backbones import create_model
    from dwr.engine.bench import time_model

    model = _load(args.model)
    engine = engine_mod.convert(model)
    twin = create_model(model.spec.replace(binary=False))
    size = (args.size, args.size) if args.size else None
    if size:
        engine._check_size(*size)
    r = time_model(model, engine, twin, args.batch, args.threads, args.repeats, size)
    r["kernel"] = engine_mod.kernel_isa()
    e = r["engine"]["min_ms"]
    r["speedup_vs_float"] = r["torch_float"]["min_ms"] / e
    r["speedup_vs_bnn"] = r["torch_bnn"]["min_ms"] / e
    if args.json:
        print_json(r)
        return 0
    c, h, w = r["input"]
    print(
        f"{r['model']}  batch {args.batch}  threads {args.threads}  input {c}x{h}x{w}  "
        f"kernel {r['kernel']}"
    )
    print(f"{'runner':26s} {'min ms':>9s} {'median ms':>10s} {'engine speedup':>15s}")
    rows = (
        ("dwr engine (bit-packed)", "engine"),
        ("torch float32 (same arch)", "torch_float"),
        ("torch BNN (float-simulated)", "torch_bnn"),
    )
    for label, key in rows:
        t = r[key]
        print(f"{label:26s} {t['min_ms']:9.2f} {t['median_ms']:10.2f} {t['min_ms'] / e:14.2f}x")
    return 0
