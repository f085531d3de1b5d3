"""Arguments shared by several subcommands (model selection, JSON output), and the
argparse types that check every number at parse time: finite, in range, below the upper
bounds of :mod:`dwr.limits`. A bad value is one line on stderr and exit code 2 before any
work starts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from dwr.backbones import BackboneSpec, get_spec
from dwr.backbones.spec import MAX_WIDTH
from dwr.limits import MAX_CLASSES, MAX_DEPTH, MAX_INPUT_SIDE, MAX_THREADS

#: Seeds accepted by NumPy and Lightning.
MAX_SEED = 2**32 - 1


def int_in(lo: int, hi: int, what: str = "value") -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be >= {lo} and <= {hi}, got {value}")
        return value

    return parse


def float_in(
    lo: float, hi: float, what: str = "value", lo_ok: bool = True, hi_ok: bool = True
) -> Callable[[str], float]:
    """argparse type: a finite float in ``[lo, hi]`` (``(lo`` / ``hi)`` when not ``*_ok``)."""
    interval = f"{'[' if lo_ok else '('}{lo:g}, {hi:g}{']' if hi_ok else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        inside = (lo <= value if lo_ok else lo < value) and (value <= hi if hi_ok else value < hi)
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"{what} must be a number in {interval}, got {text}")
        return value

    return parse


threads_type = int_in(1, MAX_THREADS, "threads")
seed_type = int_in(0, MAX_SEED, "seed")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``NAME [--depths ...] [--widths ...] [--num-classes N] [--float]``."""
    parser.add_argument("model", metavar="NAME", help="registered model (see 'dwr models')")
    parser.add_argument(
        "--depths", type=int_in(1, MAX_DEPTH, "depth"), nargs="+", help="blocks per stage"
    )
    parser.add_argument(
        "--widths", type=int_in(1, MAX_WIDTH, "width"), nargs="+", help="channels per stage"
    )
    parser.add_argument(
        "--num-classes", type=int_in(1, MAX_CLASSES, "num-classes"), help="classifier outputs"
    )
    parser.add_argument("--float", action="store_true", help="full-precision twin (no binarizers)")


def add_data_arguments(parser: argparse.ArgumentParser, download: bool = True) -> None:
    """``--dataset NAME --data-dir DIR [--download]``, the same for every command."""
    parser.add_argument(
        "--dataset",
        default="digits",
        help="digits (default, bundled), cifar10, cifar100 or imagefolder",
    )
    parser.add_argument(
        "--data-dir",
        "--data-root",
        dest="data_dir",
        metavar="DIR",
        help="data set directory ($DWR_DATA for CIFAR)",
    )
    if download:
        parser.add_argument("--download", action="store_true", help="fetch CIFAR if missing")


def add_input_size_argument(parser: argparse.ArgumentParser) -> None:
    """``--input-size C H W``, each side at most :data:`dwr.limits.MAX_INPUT_SIDE`."""
    parser.add_argument(
        "--input-size",
        type=int_in(1, MAX_INPUT_SIDE, "input size"),
        nargs=3,
        metavar=("C", "H", "W"),
    )


#: The engine's stem precisions (``dwr.engine.ops.STEM_PRECISIONS``, repeated here so that
#: parsing loads no kernels; a test keeps the two equal).
STEM_PRECISIONS = ("f32", "bf16", "int8")


def add_stem_precision_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--stem-precision f32|bf16|int8``: the precision of the engine's real-valued stem conv."""
    parser.add_argument(
        "--stem-precision",
        choices=STEM_PRECISIONS,
        default=default,
        help="engine stem conv precision: f32 (exact, the default), bf16 (bf16 weights and "
        "inputs, f32 sums; faster on CPUs with AVX512_BF16) or int8 (per-channel int8 weights, "
        "per-image int8 inputs, exact int32 sums; faster on CPUs with AVX512_VNNI)",
    )


def spec_from_args(args: argparse.Namespace) -> BackboneSpec:
    """The spec named by :func:`add_model_arguments`' options."""
    return get_spec(
        args.model,
        depths=args.depths,
        widths=args.widths,
        num_classes=args.num_classes,
        float=True if args.float else None,
    )


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout; a NaN or infinite float becomes ``null`` (bare
    ``NaN`` is not JSON)."""
    json.dump(finite_json(obj), sys.stdout, indent=2, sort_keys=False, allow_nan=False)
    sys.stdout.write("\n")


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj
