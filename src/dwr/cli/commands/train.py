"""``dwr train`` and ``dwr eval``: train a backbone with a recipe, evaluate a checkpoint."""

from __future__ import annotations

import argparse
import os
import re
import sys

from dwr.backbones.spec import MAX_WIDTH
from dwr.cli.options import (
    add_data_arguments,
    float_in,
    int_in,
    print_json,
    seed_type,
    threads_type,
)
from dwr.errors import DwrError
from dwr.limits import MAX_BATCH, MAX_CLASSES, MAX_DEPTH, MAX_EPOCHS, MAX_WORKERS

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
batch_type = int_in(1, MAX_BATCH, "batch size")
val_fraction_type = float_in(0.0, 1.0, "val-fraction", hi_ok=False)


def devices_type(text: str) -> int | str:
    """``auto``, a number of devices (>= 1) or a list of GPU ids such as ``0,1``."""
    if text == "auto" or re.fullmatch(r"\d+(,\d+)+,?|\d+,", text):
        return text
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not 1 <= n <= 1024:
        raise argparse.ArgumentTypeError(
            f"devices must be 'auto', a number from 1 to 1024 or GPU ids like 0,1; got {text!r}"
        )
    return n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a backbone (Lightning; one-step or two-step BNN recipes)",
        description="Train a registered backbone. Outputs go to --out: last.ckpt, best.ckpt, "
        "metrics.csv and result.json.",
    )
    p.add_argument("--model", required=True, metavar="NAME", help="registered model")
    p.add_argument(
        "--depths", type=int_in(1, MAX_DEPTH, "depth"), nargs="+", help="blocks per stage"
    )
    p.add_argument(
        "--widths", type=int_in(1, MAX_WIDTH, "width"), nargs="+", help="channels per stage"
    )
    p.add_argument(
        "--num-classes",
        type=int_in(1, MAX_CLASSES, "num-classes"),
        help="classifier outputs (default: the data's)",
    )
    p.add_argument("--float", action="store_true", help="train the full-precision twin")
    add_data_arguments(p)
    p.add_argument(
        "--val-fraction", type=val_fraction_type, default=0.0, help="hold out for validation"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--recipe", default="one-step", help="one-step, two-step or a YAML file of recipe keys"
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", default=[], help="override a recipe key"
    )
    p.add_argument(
        "--epochs", type=int_in(1, MAX_EPOCHS, "epochs"), help="epochs (per step for two-step)"
    )
    p.add_argument("--lr", type=float_in(0.0, 10.0, "lr", lo_ok=False), help="base learning rate")
    p.add_argument("--batch-size", type=batch_type, help="batch size per process")
    p.add_argument(
        "--weight-decay",
        type=float_in(0.0, 1.0, "weight decay"),
        help="weight decay on conv/linear weights",
    )
    p.add_argument(
        "--label-smoothing",
        type=float_in(0.0, 1.0, "label smoothing", hi_ok=False),
        help="label smoothing epsilon",
    )
    p.add_argument(
        "--workers", type=int_in(0, MAX_WORKERS, "workers"), help="DataLoader worker processes"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--precision",
        choices=("auto", "32", "bf16-mixed", "16-mixed"),
        help="training precision (default auto: bf16-mixed on CUDA, 32 elsewhere)",
    )
    p.add_argument("--teacher", metavar="NAME|CKPT", help="distil from a real-valued teacher")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    p.add_argument("--seed", type=seed_type, default=0)
    p.add_argument("--devices", type=devices_type, default=1, help="Lightning devices")
    p.add_argument("--num-nodes", type=int_in(1, 4096, "num-nodes"), default=1)
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, ...")
    p.add_argument("--accelerator", default="auto", choices=ACCELERATORS)
    p.add_argument("--threads", type=threads_type, help="torch intra-op threads per process")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or info logs")
    p.add_argument("--json", action="store_true", help="print result.json")
    p.set_defaults(func=run_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (top-1/top-5)")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    add_data_arguments(p)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--val-fraction", type=val_fraction_type, default=0.0)
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the validation carve-out")
    p.add_argument("--batch-size", type=batch_type, default=256)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_eval)


def _overrides(args: argparse.Namespace) -> dict:
    from dwr.train.recipes import parse_set

    out = parse_set(args.set)
    for key in ("epochs", "lr", "batch_size", "weight_decay", "label_smoothing", "workers"):
        value = getattr(args, key)
        if value is not None:
            out[key] = value
    if args.compile:
        out["compile"] = True
    if args.precision is not None:
        out["precision"] = args.precision
    return out


def run_train(args: argparse.Namespace) -> int:
    """Every check that needs no data first (model, recipe, Lightning settings, --out and its
    lock), then the data, then the training."""
    import torch

    from dwr.backbones import get_spec
    from dwr.files import check_not_input, run_lock
    from dwr.train import resolve_recipe
    from dwr.train.api import check_trainer_settings

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = get_spec(
        args.model,
        depths=args.depths,
        widths=args.widths,
        num_classes=args.num_classes,
        float=True if args.float else None,
    )
    resolve_recipe(args.recipe, args.dataset, _overrides(args))
    check_trainer_settings(args.devices, args.num_nodes, args.strategy, args.accelerator)
    for name in ("last.ckpt", "best.ckpt"):  # a teacher inside --out would be overwritten
        check_not_input(os.path.join(args.out, name), [args.teacher], "--out")
    with run_lock(args.out):
        return _train(args, spec)


def _train(args: argparse.Namespace, spec) -> int:
    from dwr.data import load_dataset
    from dwr.train import train

    data = load_dataset(
        args.dataset, args.data_dir, args.download, args.val_fraction, seed=args.seed
    )
    if args.num_classes is not None and args.num_classes != data.num_classes:
        raise DwrError(
            f"--num-classes {args.num_classes} does not match {data.name}, which has "
            f"{data.num_classes} classes"
        )
    result = train(
        spec,
        data,
        args.out,
        recipe=args.recipe,
        overrides=_overrides(args),
        teacher=args.teacher,
        resume=args.resume,
        quiet=args.quiet,
        seed=args.seed,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        accelerator=args.accelerator,
    )
    if not result:  # a non-zero rank under DDP
        return 0
    if args.json:
        print_json(result)
    else:
        print(
            f"{result['model']} on {result['dataset']}: top1 {result['top1']:.2f}% "
            f"top5 {result['top5']:.2f}% after {result['epochs']} epochs -> "
            f"{os.path.join(args.out, 'result.json')}"
        )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from dwr.data import load_dataset
    from dwr.limits import check_memory
    from dwr.train import evaluate, load_checkpoint, read_checkpoint

    model = load_checkpoint(args.checkpoint)
    meta = read_checkpoint(args.checkpoint)["dwr"]
    data = load_dataset(
        args.dataset, args.data_dir, args.download, args.val_fraction, seed=args.seed
    )
    if model.spec.in_channels != data.input_size[0]:
        raise DwrError(
            f"checkpoint {args.checkpoint} takes {model.spec.in_channels} input channels but "
            f"{data.name} has {data.input_size[0]}"
        )
    model.spec.output_size(*data.input_size[1:])  # raises if the images are too small
    check_memory(model.spec, tuple(data.input_size), args.batch_size)
    if model.spec.num_classes != data.num_classes:
        raise DwrError(
            f"checkpoint {args.checkpoint} predicts {model.spec.num_classes} classes but "
            f"{data.name} has {data.num_classes}; was it trained on {meta.get('dataset')}?"
        )
    skipped: list[str] = []  # one bad image does not stop the evaluation
    metrics = evaluate(model, data, args.split, args.batch_size, skipped)
    for message in skipped:
        print(f"dwr: error: {message}", file=sys.stderr)
    if skipped:
        metrics["skipped_images"] = len(skipped)
    if args.json:
        print_json(
            {
                **metrics,
                "checkpoint": args.checkpoint,
                "dataset": data.name,
                "split": args.split,
                "model": model.spec.name,
                "epoch": meta.get("epoch"),
            }
        )
    else:
        print(
            f"{model.spec.name} ({args.checkpoint}) on {data.name}/{args.split}: "
            f"top1 {metrics['top1']:.2f}% top5 {metrics['top5']:.2f}%"
            + (f" ({len(skipped)} unreadable images left out)" if skipped else "")
        )
    return 2 if skipped else 0
