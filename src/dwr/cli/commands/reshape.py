"""``dwr reshape``, ``dwr prune`` and ``dwr run``: the DWR method from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dwr import search_defaults as D
from dwr.backbones.spec import MAX_WIDTH
from dwr.cli.options import (
    add_data_arguments,
    add_model_arguments,
    float_in,
    int_in,
    print_json,
    seed_type,
    spec_from_args,
)
from dwr.cost.display import budget_text, si
from dwr.errors import DwrError
from dwr.files import LOCK_NAME, atomic_write_json, check_output, run_lock
from dwr.limits import EPS_LIMITS, EPS_SCALES, MAX_EPOCHS, check_eps

MAX_SAMPLES = 1_000_000
samples_type = int_in(1, MAX_SAMPLES, "samples")
epochs_type = int_in(1, MAX_EPOCHS, "epochs")

SAMPLES_HELP = f"images to cluster on ({D.SAMPLES})"
COLUMNS = ("depths", "widths", "bops", "flops", "ops", "params", "activations")


def eps_type(text: str) -> float | None:
    """``--eps``: ``auto`` (bisect to the budget) or a positive number (its range depends on
    ``--eps-scale``: :func:`dwr.reshape.cluster.check_eps`, checked before any work)."""
    if text.strip().lower() == "auto":
        return None
    try:
        eps = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number, got {text!r}") from None
    if not 0 < eps <= EPS_LIMITS["stage"]:
        raise argparse.ArgumentTypeError(f"must be in (0, {EPS_LIMITS['stage']:g}], got {text}")
    return eps


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """The clustering protocol's knobs (docs/method.md compares them)."""
    p.add_argument(
        "--cluster-on",
        choices=("stage", "conv"),
        default=D.CLUSTER_ON,
        help="cluster each stage's output or its last binary conv's output before BN "
        f"({D.CLUSTER_ON})",
    )
    p.add_argument(
        "--min-samples",
        type=int_in(1, MAX_WIDTH, "min-samples"),
        default=D.MIN_SAMPLES,
        help=f"DBSCAN min_samples ({D.MIN_SAMPLES})",
    )
    p.add_argument(
        "--eps",
        type=eps_type,
        default=D.EPS,
        metavar="auto|EPS",
        help="auto: bisect eps to the budget; a number: widths at that eps, scaled to the "
        f"budget ({'auto' if D.EPS is None else D.EPS})",
    )
    p.add_argument(
        "--eps-scale",
        choices=EPS_SCALES,
        default=D.EPS_SCALE,
        help="global: one eps (a cosine distance) for every stage; stage: eps in units of "
        "each stage's median k-distance, so low-resolution stages are not pruned hardest "
        f"({D.EPS_SCALE})",
    )


def check_min_samples(min_samples: int, widths: list[int]) -> None:
    """DBSCAN's points are a stage's channels: ``min_samples`` above the widest stage makes
    every channel noise, so nothing could be pruned; refuse it."""
    if min_samples > max(widths):
        raise DwrError(
            f"--min-samples {min_samples} exceeds the channels of every stage (at most "
            f"{max(widths)}): every channel would be noise and nothing pruned"
        )


def cluster_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`dwr.reshape.prune`'s clustering keywords, checked before any work."""
    check_eps(args.eps, args.eps_scale)
    return {
        "min_samples": args.min_samples,
        "eps": args.eps,
        "width_multiple": args.width_multiple,
        "eps_scale": args.eps_scale,
    }


def add_width_multiple(p: argparse.ArgumentParser) -> None:
    """``--width-multiple K``: widths in multiples of K (64: whole packed words)."""

    def multiple(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
        return int(text)

    p.add_argument("--width-multiple", type=multiple, default=1, metavar="K",
                   help="widths in multiples of K (64: whole packed words; default 1)")  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reshape", help="naive depth-width reshaping of a backbone")
    add_model_arguments(p)
    p.add_argument(
        "--factor",
        type=float,
        required=True,
        metavar="S",
        help="depth / S, width * sqrt(S)",
    )
    add_width_multiple(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_reshape)

    p = sub.add_parser("prune", help="prune a pre-trained reshaped BNN by channel clustering")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint of the pre-trained net")
    p.add_argument(
        "--model",
        required=True,
        metavar="NAME",
        help="the original backbone the checkpoint was reshaped from",
    )
    add_data_arguments(p, download=False)
    p.add_argument("--samples", type=samples_type, default=D.SAMPLES, help=SAMPLES_HELP)
    add_cluster_arguments(p)
    p.add_argument("--budget", default="original", help="'original' (default) or a number")
    p.add_argument("--budget-metric", default="bops", choices=("bops", "ops", "latency"))
    add_width_multiple(p)
    p.add_argument("--seed", type=seed_type, default=0, help="which sample images")
    p.add_argument("--out", default=None, metavar="FILE", help="write the result as JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_prune)

    p = sub.add_parser("run", help="the whole DWR method end to end, with a report")
    p.add_argument("--model", default="resnet20_cifar")
    add_data_arguments(p, download=False)
    p.add_argument(
        "--factor",
        type=float,
        default=D.FACTOR,
        metavar="S",
        help=f"reshaping factor: depth / S, width * sqrt(S) ({D.FACTOR:g})",
    )
    p.add_argument(
        "--overparam",
        type=float_in(0.0, 100.0, "overparam", lo_ok=False),
        default=D.OVERPARAM,
        help=f"widen the naive reshaped net by this before pre-training ({D.OVERPARAM:g})",
    )
    p.add_argument("--recipe", default="one-step")
    p.add_argument(
        "--epochs",
        type=epochs_type,
        default=None,
        help="epochs of each full training (digits: 10; else the recipe's)",
    )
    p.add_argument(
        "--pretrain-epochs",
        type=epochs_type,
        default=None,
        help="epochs of the pre-training before pruning (default: as many as --epochs)",
    )
    p.add_argument("--budget-metric", default="bops", choices=("bops", "ops", "latency"))
    add_width_multiple(p)
    p.add_argument("--samples", type=samples_type, default=D.SAMPLES, help=SAMPLES_HELP)
    add_cluster_arguments(p)
    p.add_argument("--seed", type=seed_type, default=0)
    p.add_argument("--resume", action="store_true", help="skip stages that finished")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=run_run)


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return si(value)


def cost_row(spec, input_size=None) -> dict[str, Any]:
    """``depths``, ``widths`` and the cost totals of a spec."""
    from dwr.reshape import spec_cost

    t = spec_cost(spec, input_size).totals()
    return {
        "depths": list(spec.depths),
        "widths": list(spec.widths),
        **{k: t[k] for k in ("bops", "flops", "ops", "params", "activations")},
    }


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    """Columns are the ``rows`` (e.g. original / reshaped), lines the metrics."""
    names = list(rows)
    cells = {k: [_cell(rows[n][k]) for n in names] for k in COLUMNS}
    width = max([len(n) for n in names] + [len(c) for v in cells.values() for c in v]) + 2
    print(f"{'':12s}" + "".join(f"{n:>{width}s}" for n in names))
    for k in COLUMNS:
        print(f"{k:12s}" + "".join(f"{c:>{width}s}" for c in cells[k]))


def run_reshape(args: argparse.Namespace) -> int:
    from dwr.reshape import naive_reshape

    spec = spec_from_args(args)
    new = naive_reshape(spec, args.factor, args.width_multiple)
    before, after = cost_row(spec), cost_row(new)
    ratio = before["activations"] / after["activations"] if after["activations"] else 0.0
    if args.json:
        print_json(
            {
                "model": spec.name,
                "factor": args.factor,
                **after,
                "activation_ratio": ratio,
                "original": before,
                "spec": new.to_dict(),
            }
        )
        return 0
    print(
        f"{spec.name} reshaped with factor {args.factor:g}: depth / {args.factor:g}, "
        f"width * {args.factor**0.5:.3f}"
    )
    print_table({"original": before, "reshaped": after})
    print(
        f"activations {ratio:.2f}x fewer (sqrt({args.factor:g}) = {args.factor**0.5:.2f}); "
        f"BOPs x{after['bops'] / before['bops']:.3f}"
    )
    return 0


def _data_spec(spec, data):
    """A spec adapted to a data set's classes and channels."""
    return spec.replace(num_classes=data.num_classes, in_channels=data.input_size[0])


def run_prune(args: argparse.Namespace) -> int:
    if args.out:  # checked before the clustering, held until the result is written
        out_path = check_output(args.out, [args.checkpoint], "--out")
        run_dir = (out_path.parent / LOCK_NAME).exists()  # a run's directory keeps its lock
        with run_lock(out_path.parent, keep=run_dir):
            return _prune(args)
    return _prune(args)


def _prune(args: argparse.Namespace) -> int:
    from dwr.backbones import get_spec
    from dwr.data import load_dataset
    from dwr.reshape import check_reshaped, prune, resolve_budget

    original = get_spec(args.model)
    cluster = cluster_kwargs(args)  # checks eps against its scale before any work
    if not Path(args.checkpoint).exists():
        raise DwrError(f"checkpoint {args.checkpoint!r} does not exist")
    from dwr.train import load_checkpoint

    model = load_checkpoint(args.checkpoint)
    check_reshaped(model.spec, original)
    check_min_samples(args.min_samples, model.spec.widths)
    data = load_dataset(args.dataset, root=args.data_dir)
    original = _data_spec(original, data)
    images = data.sample(args.samples, seed=args.seed)
    budget = resolve_budget(args.budget, args.budget_metric, original, data.input_size)
    result = prune(model, images, budget, args.budget_metric, tensor=args.cluster_on, **cluster)
    out = result.to_dict()
    if args.out:
        atomic_write_json(Path(args.out), out)
    if args.json:
        print_json(out)
        return 0
    how = (
        "clustering widths met the budget"
        if result.width_scale == 1.0
        else f"clustering widths {result.raw_widths} scaled by {result.width_scale:.4f}"
    )
    shown = budget_text(args.budget_metric, budget)
    eps = f"eps {result.eps:.6g}"
    if args.eps_scale == "stage":
        eps += " x each stage's k-distance " + str([round(m, 4) for m in result.eps_scales])
    print(f"{eps} ({how}); {args.budget_metric} budget {shown}")
    print_table(
        {
            "original": cost_row(original, data.input_size),
            "pre-trained": cost_row(model.spec, data.input_size),
            "pruned": cost_row(result.spec, data.input_size),
        }
    )
    return 0


def run_run(args: argparse.Namespace) -> int:
    from dwr.reshape.pipeline import run_pipeline

    with run_lock(args.out):
        return _run(args, run_pipeline)


def _run(args: argparse.Namespace, run_pipeline) -> int:
    report = run_pipeline(
        model=args.model,
        dataset=args.dataset,
        out_dir=args.out,
        data_dir=args.data_dir,
        factor=args.factor,
        overparam=args.overparam,
        recipe=args.recipe,
        epochs=args.epochs,
        pretrain_epochs=args.pretrain_epochs,
        budget_metric=args.budget_metric,
        samples=args.samples,
        seed=args.seed,
        resume=args.resume,
        quiet=args.quiet,
        cluster_on=args.cluster_on,
        **cluster_kwargs(args),
    )
    if args.quiet:
        print(Path(args.out) / "report.md")
    else:
        print((Path(args.out) / "report.md").read_text())
    del report
    return 0
