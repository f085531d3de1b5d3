"""``dwr bench NAME|CHECKPOINT``: engine latency against PyTorch float32 and the simulated BNN."""

from __future__ import annotations

import argparse
import os

from dwr.cli.options import add_stem_precision_argument, int_in, print_json, threads_type
from dwr.errors import DwrError
from dwr.limits import MAX_BATCH, MAX_INPUT_SIDE, check_memory


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency of the bit-packed engine against PyTorch")
    p.add_argument(
        "model",
        metavar="NAME|CHECKPOINT|MODULE:CALLABLE",
        help="registered model, checkpoint file, or package.module:callable returning a BNN "
        "(compiled through the engine's front door)",
    )
    p.add_argument("--threads", type=threads_type, default=1, help="threads (engine and PyTorch)")
    p.add_argument("--batch", type=int_in(1, MAX_BATCH, "batch"), default=1, help="images per call")
    p.add_argument(
        "--repeats", type=int_in(1, 100_000, "repeats"), default=20, help="timed runs per runner"
    )
    p.add_argument(
        "--size",
        type=int_in(1, MAX_INPUT_SIDE, "size"),
        help="input side (default: the spec's, 224 or 32)",
    )
    add_stem_precision_argument(p, "f32")
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
    if ":" in arg:
        from dwr.cli.commands.deploy import _from_callable

        return _from_callable(arg)
    return create_model(arg).eval()


def _foreign_input_size(model, side: int | None) -> tuple[int, int, int]:
    """(C, H, W) for a model without a spec: its first conv's input channels, ``side`` or 224."""
    from torch import nn

    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise DwrError(f"{type(model).__name__} has no Conv2d; the engine runs convolutional BNNs")
    return (first.in_channels, side or 224, side or 224)


def _compile_foreign(model, input_size: tuple[int, int, int], stem_precision: str = "f32"):
    """The front door: trace ``model`` on a seeded random example of ``input_size``."""
    import torch

    import dwr.engine as engine_mod

    example = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(0))
    return engine_mod.convert(model, example, stem_precision=stem_precision)


def run_bench(args: argparse.Namespace) -> int:
    import dwr.engine as engine_mod
    from dwr.backbones import create_model
    from dwr.engine.bench import time_model
    from dwr.engine.cpu import cpu_info, describe_cpu

    model = _load(args.model)
    spec = getattr(model, "spec", None)
    if spec is None:  # a model from package.module:callable: no float twin to compare
        input_size = _foreign_input_size(model, args.size)
        engine, twin = _compile_foreign(model, input_size, args.stem_precision), None
    else:
        c, side, _ = spec.input_size
        input_size = (c, args.size or side, args.size or side)
        # three runners (engine, float twin, simulated BNN) hold a batch's activations each
        check_memory(spec, input_size, 3 * args.batch)
        engine = engine_mod.convert(model, stem_precision=args.stem_precision)
        twin = create_model(spec.replace(binary=False))
    size = (args.size, args.size) if args.size else None
    if size:
        engine._check_size(*size)
    r = time_model(model, engine, twin, args.batch, args.threads, args.repeats, size, input_size)
    r["kernel"] = engine_mod.kernel_isa()
    r["stem_precision"] = engine.stem_precision
    r["cpu"] = cpu_info()
    e = r["engine"]["min_ms"]
    if twin is not None:
        r["speedup_vs_float"] = r["torch_float"]["min_ms"] / e
    r["speedup_vs_bnn"] = r["torch_bnn"]["min_ms"] / e
    if args.json:
        print_json(r)
        return 0
    c, h, w = r["input"]
    print(
        f"{r['model']}  batch {args.batch}  threads {args.threads}  input {c}x{h}x{w}  "
        f"kernel {r['kernel']}  stem {r['stem_precision']}"
    )
    print(describe_cpu(r["cpu"]))
    print(f"{'runner':26s} {'min ms':>9s} {'median ms':>10s} {'engine speedup':>15s}")
    rows = (
        ("dwr engine (bit-packed)", "engine"),
        ("torch float32 (same arch)", "torch_float"),
        ("torch BNN (float-simulated)", "torch_bnn"),
    )
    for label, key in rows:
        if key not in r:
            continue
        t = r[key]
        print(f"{label:26s} {t['min_ms']:9.2f} {t['median_ms']:10.2f} {t['min_ms'] / e:14.2f}x")
    return 0
