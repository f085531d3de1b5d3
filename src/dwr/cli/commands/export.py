"""``dwr export NAME|CHECKPOINT --format onnx|qonnx -o model.onnx``: a graph for other runtimes."""

from __future__ import annotations

import argparse
import os

from dwr.cli.options import int_in
from dwr.errors import DwrError
from dwr.limits import MAX_BATCH, MAX_INPUT_SIDE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (standard operators, Sign)")
    p.add_argument(
        "model",
        metavar="NAME|CHECKPOINT",
        help="checkpoint file, registered model, or package.module:callable returning a model",
    )
    p.add_argument(
        "--format",
        choices=["onnx", "qonnx"],
        default="onnx",
        help="onnx: standard operators only; qonnx: binarizers as QONNX BipolarQuant (FINN)",
    )
    p.add_argument("-o", "--output", required=True, help="file to write, e.g. model.onnx")
    p.add_argument("--opset", type=int_in(1, 1000, "opset"), default=17, help="ONNX opset (>= 17)")
    p.add_argument(
        "--size",
        type=int_in(1, MAX_INPUT_SIDE, "size"),
        help="input side (default: the spec's, 224 or 32)",
    )
    p.add_argument(
        "--batch",
        type=int_in(1, MAX_BATCH, "batch"),
        help="fixed batch size (default: symbolic; 1 for qonnx)",
    )
    p.add_argument(
        "--plain-sign",
        action="store_true",
        help="binarize with one Sign node (0 -> 0) instead of the exact Sign(Sign(x) + 0.5)",
    )
    p.set_defaults(func=run_export)


def _load(arg: str):
    from dwr.backbones import create_model

    if os.path.exists(arg):
        from dwr.train import load_checkpoint

        return load_checkpoint(arg).eval()
    if os.sep in arg or arg.endswith((".ckpt", ".pt", ".pth")):
        raise DwrError(f"checkpoint {arg!r} does not exist")
    if ":" in arg:  # package.module:callable returning a dwr backbone
        from dwr.cli.commands.deploy import _from_callable

        return _from_callable(arg)
    return create_model(arg).eval()


def _example(model, side: int | None):
    """A seeded random input for the front door's trace: the model's first conv's channels,
    ``side`` (else 224) square."""
    import torch

    from dwr.cli.commands.bench import _foreign_input_size

    size = _foreign_input_size(model, side)
    return torch.randn(1, *size, generator=torch.Generator().manual_seed(0))


def run_export(args: argparse.Namespace) -> int:
    from dwr.export import export_onnx
    from dwr.files import check_output

    check_output(args.output, [args.model], "-o")
    model = _load(args.model)
    size = (args.size, args.size) if args.size else None
    if args.plain_sign and args.format == "qonnx":
        raise DwrError("--plain-sign applies to --format onnx; QONNX's BipolarQuant maps 0 to +1")
    sign = "qonnx" if args.format == "qonnx" else ("plain" if args.plain_sign else "exact")
    spec = getattr(model, "spec", None)
    example = None if spec is not None else _example(model, args.size)
    proto = export_onnx(
        model,
        args.output,
        opset=args.opset,
        size=size,
        sign=sign,
        batch=args.batch,
        example_input=example,
    )
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    n, c, h, w = (d.dim_param or d.dim_value for d in dims)
    classes = proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    print(
        f"wrote {args.output}: {spec.name or spec.family if spec else type(model).__name__}, "
        f"{'QONNX' if args.format == 'qonnx' else 'ONNX'} opset {args.opset}, "
        f"input {n} x {c} x {h} x {w}, output {n} x {classes} logits"
    )
    return 0
