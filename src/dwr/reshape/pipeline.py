"""``dwr run``: the whole DWR method, as resumable stages under one output directory.

Stages (each writes ``DIR/<stage>/`` and, when finished, ``DIR/<stage>/done.json``):

1. ``original``: train the original backbone (the baseline and the budget).
2. ``naive``: train the naive reshaped backbone (depth / s, width * sqrt(s)), its widths
   scaled by one factor to the original's budget (rounding depths changes the cost: ResNet-20
   at s=2 would otherwise cost 1.27x), from scratch.
3. ``pretrain``: briefly train the naive backbone widened by ``overparam``.
4. ``prune``: cluster its channels (DBSCAN, cosine) to the original's budget (``tensor``,
   ``min_samples``, ``eps``: see :func:`dwr.reshape.prune.prune`).
5. ``dwr``: train the pruned (DWR) backbone from scratch.

``original``, ``naive`` and ``dwr`` use the same recipe and epochs; top-1 is the last epoch's
test accuracy (no checkpoint selection on the test set). ``resume=True`` skips finished stages
and lets an interrupted training continue from its last checkpoint. Any previous report is
deleted at the start; ``report.{md,png,json}`` are written only when every stage finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dwr import search_defaults as D
from dwr.backbones import BackboneSpec, get_spec
from dwr.errors import DwrError
from dwr.limits import check_eps
from dwr.reshape.budget import (
    TOLERANCE,
    check_metric,
    metric_value,
    scale_to_budget,
    spec_cost,
)
from dwr.reshape.naive import naive_reshape, scale_widths
from dwr.reshape.prune import MIN_SAMPLES_IMAGES, PruneResult, prune
from dwr.reshape.report import remove_report, write_json, write_report

STAGES = ("original", "naive", "pretrain", "prune", "dwr")
#: ``dwr run`` epochs on the shipped digits data: about 15 minutes on 2 CPU cores in all.
DIGITS_EPOCHS = 10
#: Pre-training epochs as a fraction of the full epochs (at least 1): see dwr.search_defaults.
PRETRAIN_FRACTION = D.PRETRAIN_FRACTION
#: The clustering knobs' defaults (also what runs saved before they existed used).
CLUSTER_DEFAULTS = {
    "min_samples": 2,
    "eps": None,
    "cluster_on": "stage",
    "width_multiple": 1,
    "eps_scale": "global",
}


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, flush=True)


def _row(name: str, spec: BackboneSpec, input_size, top1: float) -> dict[str, Any]:
    t = spec_cost(spec, input_size).totals()
    return {
        "name": name,
        "depths": list(spec.depths),
        "widths": list(spec.widths),
        **{k: t[k] for k in ("bops", "flops", "ops", "activations", "params")},
        "top1": top1,
    }


def _read_done(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pretrain_spec(original: BackboneSpec, factor: float, overparam: float) -> BackboneSpec:
    """The network that is pre-trained and then pruned: the naive reshape of ``original``
    (depth / factor, width * sqrt(factor)) with every width times ``overparam``."""
    base = original.name or original.family
    naive = naive_reshape(original, factor)
    return scale_widths(naive, overparam, name=f"{base}_naive{factor:g}_x{overparam:g}")


def prune_checkpoint(
    checkpoint: str | Path,
    data: Any,
    budget: float,
    budget_metric: str,
    samples: int,
    seed: int,
    name: str,
    **cluster: Any,
) -> PruneResult:
    """Cluster the stage features of a pre-trained checkpoint on ``samples`` training images
    (drawn with ``seed``) and prune it to ``budget``; ``cluster`` holds :func:`prune`'s
    ``min_samples``, ``eps`` and ``tensor``."""
    from dwr.train import load_checkpoint

    net = load_checkpoint(checkpoint)
    images = data.sample(samples, seed=seed)
    return prune(net, images, budget, budget_metric, name=name, **cluster)


def search_dwr_spec(
    original: BackboneSpec,
    data: Any,
    out_dir: str | Path,
    *,
    factor: float = D.FACTOR,
    overparam: float = D.OVERPARAM,
    recipe: str = "one-step",
    overrides: dict[str, Any] | None = None,
    budget_metric: str = "bops",
    samples: int = D.SAMPLES,
    seed: int = 0,
    quiet: bool = True,
    **cluster: Any,
) -> PruneResult:
    """Steps 2-3 of the method on their own (resumable under ``out_dir/pretrain``): pre-train
    :func:`pretrain_spec`, then prune it to the original's ``budget_metric`` (``cluster``:
    :func:`prune`'s ``min_samples``, ``eps``, ``tensor``). ``dwr run`` runs the same two steps
    as separate stages; ``benchmarks/paper_table.py`` calls this."""
    from dwr.train import train

    wide = pretrain_spec(original, factor, overparam)
    result = train(
        wide,
        data,
        Path(out_dir) / "pretrain",
        recipe,
        overrides,
        resume=True,
        quiet=quiet,
        seed=seed,
    )
    budget = metric_value(original, budget_metric, tuple(data.input_size))
    last = result.get("last_checkpoint", result["checkpoint"])
    name = f"{original.name or original.family}_dwr{factor:g}"
    defaults = {"min_samples": D.MIN_SAMPLES, "eps": D.EPS, "tensor": D.CLUSTER_ON}
    cluster = {**defaults, "eps_scale": D.EPS_SCALE, **cluster}
    return prune_checkpoint(last, data, budget, budget_metric, samples, seed, name, **cluster)


def run_pipeline(
    model: str | BackboneSpec = "resnet20_cifar",
    dataset: str = "digits",
    out_dir: str | Path = "runs/dwr",
    *,
    data: Any = None,
    data_dir: str | None = None,
    factor: float = D.FACTOR,
    overparam: float = D.OVERPARAM,
    recipe: str = "one-step",
    epochs: int | None = None,
    pretrain_epochs: int | None = None,
    budget_metric: str = "bops",
    samples: int = D.SAMPLES,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    min_samples: int = D.MIN_SAMPLES,
    eps: float | None = D.EPS,
    cluster_on: str = D.CLUSTER_ON,
    width_multiple: int = 1,
    eps_scale: str = D.EPS_SCALE,
) -> dict[str, Any]:
    """Run (or resume) the DWR method; returns the report dict also written to ``out_dir``.

    ``model`` is a registered name or a spec; ``data`` an already loaded ``DataBundle``
    (else ``dataset`` is loaded from ``data_dir``). Raises :class:`DwrError` for bad input,
    before any training where it can be foreseen.
    """
    from dwr.data import load_dataset
    from dwr.train import evaluate, load_checkpoint, resolve_recipe, train

    out = Path(out_dir)
    check_metric(budget_metric)
    original = get_spec(model) if isinstance(model, str) else model
    naive = naive_reshape(original, factor, width_multiple)  # validates factor and multiple
    if not overparam > 0:
        raise DwrError(f"--overparam must be positive, got {overparam}")
    check_eps(eps, eps_scale)
    if samples < MIN_SAMPLES_IMAGES:
        raise DwrError(
            f"clustering needs at least {MIN_SAMPLES_IMAGES} sample images, got {samples}"
        )
    for what, value in (("epochs", epochs), ("pretrain epochs", pretrain_epochs)):
        if value is not None and value < 1:
            raise DwrError(f"{what} must be >= 1, got {value}")
    if data is None:
        data = load_dataset(dataset, root=data_dir)
    if data.size("train") < samples:
        raise DwrError(
            f"--samples {samples} is more than the {data.size('train')} training images "
            f"of {data.name!r}"
        )
    fit = {"num_classes": data.num_classes, "in_channels": data.input_size[0]}
    original = original.replace(**fit)
    base = original.name or original.family
    naive = naive.replace(**fit, name=f"{base}_naive{factor:g}")
    wide = pretrain_spec(original, factor, overparam)
    size = tuple(data.input_size)
    budget = metric_value(original, budget_metric, size)
    naive = scale_to_budget(naive, budget, budget_metric, size, width_multiple=width_multiple)
    top = metric_value(wide, budget_metric, size)
    if top < budget * (1 - TOLERANCE):
        raise DwrError(
            f"the pre-training network {list(wide.widths)} costs {top:.4g} {budget_metric}, "
            f"below the budget {budget:.4g}: no eps can reach it; use a larger --factor or "
            "--overparam"
        )
    if epochs is None:
        epochs = DIGITS_EPOCHS if data.name == "digits" else None
    epochs = int(
        resolve_recipe(recipe, data.name, {"epochs": epochs} if epochs else None)["epochs"]
    )
    if pretrain_epochs is None:
        pretrain_epochs = max(1, round(epochs * PRETRAIN_FRACTION))

    config = {
        "model": original.to_dict(),
        "dataset": data.name,
        "factor": factor,
        "overparam": overparam,
        "recipe": recipe,
        "epochs": epochs,
        "pretrain_epochs": pretrain_epochs,
        "budget_metric": budget_metric,
        "samples": samples,
        "seed": seed,
        "min_samples": min_samples,
        "eps": eps,
        "cluster_on": cluster_on,
        "width_multiple": width_multiple,
        "eps_scale": eps_scale,
    }
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.exists():
        if not resume:
            raise DwrError(
                f"{out} already holds a dwr run; pass --resume to continue it or choose "
                "another --out"
            )
        old = _read_done(cfg_path) or {}
        old = {**CLUSTER_DEFAULTS, **old}  # runs from before these knobs used the defaults
        changed = sorted(k for k in config if old.get(k) != config[k])
        if changed:
            raise DwrError(
                f"{out} was run with different settings ({', '.join(changed)}); resume with "
                "the same options or choose another --out"
            )
    remove_report(out)  # from here on a report exists only once every stage has finished
    write_json(cfg_path, config)

    t_start = time.perf_counter()
    stage_no = {name: i + 1 for i, name in enumerate(STAGES)}

    def stage(name: str, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        marker = out / name / "done.json"
        prefix = f"[{stage_no[name]}/{len(STAGES)}] {name}:"
        done = _read_done(marker) if resume else None
        if done is not None:
            _log(quiet, f"{prefix} finished earlier, skipped ({what})")
            return done
        _log(quiet, f"{prefix} {what}")
        t0 = time.perf_counter()
        info = fn()
        info["seconds"] = round(time.perf_counter() - t0, 1)
        write_json(marker, info)
        return info

    def trainer(spec: BackboneSpec, name: str, n_epochs: int) -> Callable[[], dict[str, Any]]:
        def fn() -> dict[str, Any]:
            result = train(
                spec,
                data,
                out / name,
                recipe,
                {"epochs": n_epochs},
                resume=resume,
                quiet=quiet,
                seed=seed,
            )
            last = result.get("last_checkpoint", result["checkpoint"])
            metrics = evaluate(load_checkpoint(last), data, "test")
            return {
                "spec": spec.to_dict(),
                "top1": metrics["top1"],
                "top5": metrics["top5"],
                "epochs": result["epochs"],
                "checkpoint": str(last),
            }

        return fn

    def describe(spec: BackboneSpec, n: int) -> str:
        return (
            f"train {spec.name} depths {list(spec.depths)} widths {list(spec.widths)}, {n} epochs"
        )

    done: dict[str, dict[str, Any]] = {}
    done["original"] = stage(
        "original", describe(original, epochs), trainer(original, "original", epochs)
    )
    done["naive"] = stage("naive", describe(naive, epochs), trainer(naive, "naive", epochs))
    done["pretrain"] = stage(
        "pretrain", describe(wide, pretrain_epochs), trainer(wide, "pretrain", pretrain_epochs)
    )

    def prune_fn() -> dict[str, Any]:
        ckpt = done["pretrain"]["checkpoint"]
        name = f"{base}_dwr{factor:g}"
        found = prune_checkpoint(
            ckpt,
            data,
            budget,
            budget_metric,
            samples,
            seed,
            name,
            min_samples=min_samples,
            eps=eps,
            tensor=cluster_on,
            width_multiple=width_multiple,
            eps_scale=eps_scale,
        )
        return found.to_dict()

    done["prune"] = stage(
        "prune",
        f"cluster {samples} images' stage features to the {budget_metric} budget {budget:.4g}",
        prune_fn,
    )
    dwr_spec = BackboneSpec.from_dict(done["prune"]["spec"])
    same_as_naive = dwr_spec.replace(name=naive.name) == naive
    if same_as_naive:  # the same network, recipe and seed: its training would repeat naive's
        done["dwr"] = stage(
            "dwr",
            f"{dwr_spec.name} is the naive network {list(naive.widths)}: its run is reused",
            lambda: {**done["naive"], "same_as": "naive"},
        )
    else:
        done["dwr"] = stage("dwr", describe(dwr_spec, epochs), trainer(dwr_spec, "dwr", epochs))

    rows = [
        _row("original", original, size, done["original"]["top1"]),
        _row("naive", naive, size, done["naive"]["top1"]),
        _row("dwr", dwr_spec, size, done["dwr"]["top1"]),
    ]
    if budget_metric == "latency":  # predicted engine ms, the report's budget column
        for row, spec in zip(rows, (original, naive, dwr_spec), strict=True):
            row["latency"] = metric_value(spec, "latency", size)
    dwr_cost = metric_value(dwr_spec, budget_metric, size)
    report = {
        "model": base,
        "dataset": data.name,
        "input_size": list(size),
        "factor": factor,
        "overparam": overparam,
        "recipe": recipe,
        "epochs": epochs,
        "pretrain_epochs": pretrain_epochs,
        "samples": samples,
        "seed": seed,
        "cluster": {
            "tensor": cluster_on,
            "min_samples": min_samples,
            "eps": eps,
            "eps_scale": eps_scale,
        },
        "budget_metric": budget_metric,
        "budget": budget,
        "dwr_vs_budget": dwr_cost / budget,
        "dwr_same_as_naive": same_as_naive,
        "within_budget": dwr_cost <= budget * (1 + TOLERANCE)  # latency is a ceiling
        if budget_metric == "latency"
        else abs(dwr_cost / budget - 1) <= TOLERANCE,
        "rows": rows,
        "pretrain": {
            **_row("pretrain", wide, size, done["pretrain"]["top1"]),
            "epochs": done["pretrain"]["epochs"],
        },
        "prune": {k: v for k, v in done["prune"].items() if k != "spec"},
        "seconds": {name: done[name].get("seconds") for name in STAGES},
        "wall_seconds_this_call": round(time.perf_counter() - t_start, 1),
    }
    write_report(report, out)
    _log(quiet, f"report: {out / 'report.md'}")
    return report
