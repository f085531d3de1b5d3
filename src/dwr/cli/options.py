"""Arguments shared by several subcommands (model selection, JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dwr.backbones import BackboneSpec, get_spec


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``NAME [--depths ...] [--widths ...] [--num-classes N] [--float]``."""
    parser.add_argument("model", metavar="NAME", help="registered model (see 'dwr models')")
    parser.add_argument("--depths", type=int, nargs="+", help="blocks per stage")
    parser.add_argument("--widths", type=int, nargs="+", help="channels per stage")
    parser.add_argument("--num-classes", type=int, help="classifier outputs")
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
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
