"""``dwr models`` and ``dwr summary``: what the registry holds and what a backbone costs."""

from __future__ import annotations

import argparse

from dwr.backbones import get_spec, list_models
from dwr.cli.options import (
    add_input_size_argument,
    add_model_arguments,
    add_stem_precision_argument,
    print_json,
    spec_from_args,
    threads_type,
)
from dwr.cost.display import si
from dwr.errors import DwrError
from dwr.limits import check_input_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered backbones")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_models)

    p = sub.add_parser("summary", help="per-layer cost table of a backbone")
    add_model_arguments(p)
    add_input_size_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--latency", action="store_true", help="predicted engine ms per op")
    p.add_argument("--threads", type=threads_type, default=1, help="threads for --latency (1)")
    add_stem_precision_argument(p, "f32")
    p.set_defaults(func=run_summary)


def run_models(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models():
        spec = get_spec(name)
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "method": spec.method,
                "depths": list(spec.depths),
                "widths": list(spec.widths),
            }
        )
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(
                f"{r['name']:22s} {r['family']:7s} {r['method']:9s} "
                f"depths={r['depths']} widths={r['widths']}"
            )
    return 0


def run_summary(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    input_size = tuple(args.input_size) if args.input_size else spec.input_size
    if input_size[0] != spec.in_channels:
        raise DwrError(
            f"--input-size has {input_size[0]} channels but {spec.name} takes {spec.in_channels}"
        )
    import torch  # PyTorch: only the commands that need it import it

    from dwr.backbones import build
    from dwr.cost import count_cost

    check_input_size(tuple(input_size), "--input-size")
    spec.output_size(*input_size[1:])  # a clear error if the input is too small
    with torch.device("meta"):  # shapes only: no memory, no weight init, any input size
        report = count_cost(build(spec), tuple(input_size))
    latency = (
        _latency(spec, input_size, args.threads, args.stem_precision) if args.latency else None
    )
    if args.json:
        print_json(
            {
                "model": spec.name,
                "depths": list(spec.depths),
                "widths": list(spec.widths),
                **report.to_dict(),
                **({"latency": latency} if latency else {}),
                "spec": spec.to_dict(),
            }
        )
        return 0
    print(
        f"{spec.name}  depths={list(spec.depths)} widths={list(spec.widths)} "
        f"method={spec.method} binary={spec.binary} input={list(input_size)}"
    )
    header = f"{'layer':36s} {'kind':6s} {'output':>16s} {'MACs':>10s} {'params':>9s}"
    print(header)
    print("-" * len(header))
    for layer in report.layers:
        shape = "x".join(map(str, layer.out_shape))
        print(
            f"{layer.name:36s} {layer.kind:6s} {shape:>16s} {si(layer.macs):>10s} "
            f"{si(layer.params):>9s}"
        )
    print("-" * len(header))
    t = report.totals()
    print(
        f"BOPs {si(t['bops'])}  FLOPs {si(t['flops'])}  OPs {si(t['ops'])}  "
        f"params {si(t['params'])} (binary {si(t['binary_params'])})  "
        f"storage {t['storage_bytes'] / 2**20:.2f} MiB  activations {si(t['activations'])}"
    )
    if latency:
        from dwr.cli.commands.profile import print_latency

        print_latency(latency)
    return 0


def _latency(spec, input_size, threads: int, stem_precision: str = "f32") -> dict:
    from dwr.cost.latency import predict

    report = predict(spec, None, tuple(input_size), threads, stem_precision)
    return report.to_dict()
