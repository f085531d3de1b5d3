"""``train``, ``evaluate``: the Python API behind ``dwr train`` and ``dwr eval``.

Layout of ``out_dir``: ``last.ckpt``, ``best.ckpt`` (highest validation top-1), ``metrics.csv``
and, when training finished, ``result.json``. The reported test top-1 is ``best.ckpt``'s when
the data has a ``val`` split and ``last.ckpt``'s otherwise: without a validation split the
per-epoch numbers are test numbers, and picking an epoch on them would report the test split's
best case. Two-step recipes train step 1 in
``out_dir/step1``; a teacher given by model name is trained first in ``out_dir/teacher``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dwr.backbones import BackboneSpec, build, get_spec, list_models
from dwr.data import DataBundle
from dwr.errors import DwrError
from dwr.files import run_lock
from dwr.limits import check_memory
from dwr.train.checkpoint import (
    describe,
    load_checkpoint,
    model_state,
    read_checkpoint,
    set_real_weights,
    write_json,
)
from dwr.train.losses import topk_correct
from dwr.train.recipes import resolve_recipe

RESULT_KEYS = ("top1", "top5", "epochs", "checkpoint", "spec")
_NOISY_WARNINGS = (
    r".*does not have many workers.*",
    r".*GPU available but not used.*",
    r".*smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*on_train_epoch_end.* ModelCheckpoint.*",
    r".*sync_dist=True.*",
    r".*The `srun` command is available.*",
    r".*Consider setting `persistent_workers=True`.*",
)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DataBundle,
    split: str = "test",
    batch_size: int = 256,
    skipped: list[str] | None = None,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (percent) of ``model`` on a split, without augmentation, in
    float32 on the model's device (an in-memory split is uploaded there once).

    ``skipped``: image files that cannot be decoded are left out (their messages appended
    here) instead of stopping the run."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    c1 = c5 = n = 0
    skip = skipped is not None
    if device.type != "cpu" and data.on_device(split):
        batches = data.device_loader(split, batch_size, device)
    else:
        batches = data.loader(split, batch_size, shuffle=False, augment=False, skip_bad=skip)
    for x, y, *bad in batches:
        if bad and skip:  # (images, labels, messages): a bad file has label -1
            skipped.extend(m for m in bad[0] if m)
            x, y = x[y >= 0], y[y >= 0]
            if not len(y):
                continue
        logits = model(x.to(device))
        a, b = topk_correct(logits, y.to(device))
        c1, c5, n = c1 + a, c5 + b, n + int(y.shape[0])
    model.train(was_training)
    if n == 0 and skipped:
        raise DwrError(f"no image of the {split!r} split can be decoded; the first: {skipped[0]}")
    if n == 0:
        raise DwrError(f"the {split!r} split of {data.name!r} is empty")
    return {"top1": round(100.0 * c1 / n, 4), "top5": round(100.0 * c5 / n, 4)}


@contextlib.contextmanager
def _lightning_output(quiet: bool):
    """Silence Lightning's hardware banners and benign warnings (and all info when quiet)."""
    names = [
        "lightning.pytorch.utilities.rank_zero",
        "lightning.pytorch.accelerators.cuda",
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
    ]
    if quiet:
        names += ["lightning.pytorch", "lightning.fabric"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for pattern in _NOISY_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _trainer(**kwargs: Any):
    """``pl.Trainer(**kwargs)``; Lightning's configuration errors (a bad ``devices``,
    ``accelerator``, ``strategy`` or ``num_nodes``, a GPU asked for but absent) as DwrError."""
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**kwargs)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as exc:
        chosen = ", ".join(
            f"--{k.replace('_', '-')} {kwargs[k]}"
            for k in ("devices", "accelerator", "strategy", "num_nodes")
            if k in kwargs
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DwrError(f"invalid Lightning settings ({chosen}): {first}") from None


def check_trainer_settings(
    devices: int | str = 1, num_nodes: int = 1, strategy: str = "auto", accelerator: str = "auto"
) -> None:
    """Build and discard a Trainer with these settings, so a bad one fails before any work.

    Several nodes need a launcher on every node (``NODE_RANK`` and ``MASTER_ADDR`` set by
    hand, SLURM or torchrun); without one this process would wait for the others forever.
    """
    launched = any(k in os.environ for k in ("NODE_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID"))
    if isinstance(num_nodes, int) and num_nodes > 1 and not launched:
        raise DwrError(
            f"--num-nodes {num_nodes} needs dwr started on every node with NODE_RANK, "
            "MASTER_ADDR and MASTER_PORT set (or under SLURM or torchrun); on one machine use "
            "--devices instead"
        )
    with _lightning_output(quiet=True):
        _trainer(
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            accelerator=accelerator,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )


def _complete_result(path: Path, spec: BackboneSpec, epochs: int) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or any(k not in result for k in RESULT_KEYS):
        return None
    if result["spec"] != spec.to_dict() or result["epochs"] != epochs:
        return None
    return result if Path(result["checkpoint"]).is_file() else None


def _fit_spec(spec: BackboneSpec, data: DataBundle) -> BackboneSpec:
    if spec.in_channels != data.input_size[0]:
        raise DwrError(
            f"{spec.name} takes {spec.in_channels} input channels but {data.name} has "
            f"{data.input_size[0]}"
        )
    spec.output_size(*data.input_size[1:])  # raises if the input is too small
    if spec.num_classes != data.num_classes:
        spec = spec.replace(num_classes=data.num_classes)
    return spec


def _fit_phase(
    spec: BackboneSpec,
    data: DataBundle,
    out: Path,
    cfg: dict[str, Any],
    *,
    weight_decay: float,
    real_weights: bool,
    init: dict[str, torch.Tensor] | None,
    teacher: nn.Module | None,
    resume: bool,
    quiet: bool,
    seed: int,
    trainer_kwargs: dict[str, Any],
) -> tuple[bool, int]:
    """Train one phase into ``out``; returns (this process is global rank 0, world size)."""
    import lightning.pytorch as pl

    from dwr.train.callbacks import EpochCheckpoint, ProgressBar
    from dwr.train.checkpoint import AtomicCheckpointIO
    from dwr.train.module import BnnModule, NonFiniteLoss

    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.ckpt"
    ckpt_path, start_epoch = None, 0
    if resume and last.exists():
        meta = read_checkpoint(last)["dwr"]
        saved = BackboneSpec.from_dict(meta["spec"])
        if saved != spec:
            raise DwrError(
                f"{last} is a checkpoint of {describe(saved)}, not {describe(spec)}; "
                "resume with the same model options or choose another --out"
            )
        if meta.get("epoch", 0) >= cfg["epochs"]:
            return int(os.environ.get("RANK", "0")) == 0, int(os.environ.get("WORLD_SIZE", "1"))
        ckpt_path, start_epoch = str(last), int(meta.get("epoch", 0))
    pl.seed_everything(seed, workers=True, verbose=False)
    model = build(spec)
    set_real_weights(model, real_weights)
    if init is not None:
        model.load_state_dict(init)
    meta = {
        "spec": spec.to_dict(),
        "dataset": data.name,
        "real_weights": real_weights,
        "num_classes": data.num_classes,
        "input_size": list(data.input_size),
        # what `dwr convert` stores in the engine file, so `dwr predict` preprocesses alike
        "class_names": [str(n) for n in data.class_names],
        "mean": [float(v) for v in data.mean],
        "std": [float(v) for v in data.std],
    }
    device = data_device(cfg, data, trainer_kwargs)
    if device is not None and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    module = BnnModule(model, cfg, weight_decay, meta, teacher)
    val_split = "val" if "val" in data.splits else "test"
    callbacks: list[Any] = [EpochCheckpoint(out)]
    if not quiet:
        # on an accelerator every refresh waits for the device: refresh every 25 steps there
        callbacks.append(ProgressBar(refresh_rate=1 if device is None else 25))
    with _lightning_output(quiet):
        trainer = _trainer(
            max_epochs=cfg["epochs"],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=not quiet,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            gradient_clip_val=cfg["grad_clip"] or None,
            default_root_dir=str(out),
            log_every_n_steps=1,
            limit_train_batches=cfg["train_batches"] or None,
            precision=trainer_precision(cfg, trainer_kwargs),
            **trainer_kwargs,
        )
        train_loader, val_loader = _loaders(data, cfg, val_split, device, seed, start_epoch)
        try:
            trainer.fit(
                module,
                train_dataloaders=train_loader,
                val_dataloaders=val_loader,
                ckpt_path=ckpt_path,
            )
        except NonFiniteLoss as exc:
            kept = (
                f"the last good checkpoint {last} is kept" if last.exists() else "no epoch finished"
            )
            raise DwrError(
                f"training stopped: {exc}; {kept}. Lower the learning rate (--lr) or set "
                "grad_clip (--set grad_clip=1), then rerun (with --resume to continue)"
            ) from None
    if trainer.interrupted:
        raise KeyboardInterrupt
    return trainer.is_global_zero, trainer.world_size


def _uses_cuda(trainer_kwargs: dict[str, Any]) -> bool:
    accelerator = trainer_kwargs.get("accelerator", "auto")
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def trainer_precision(cfg: dict[str, Any], trainer_kwargs: dict[str, Any]) -> str:
    """Lightning's precision for the recipe's ``precision``: ``auto`` is bf16 autocast on
    CUDA (binarised activations are exact in bf16) and float32 elsewhere, where autocast
    would only slow the step down."""
    choice = cfg.get("precision", "auto")
    if choice == "auto":
        return "bf16-mixed" if _uses_cuda(trainer_kwargs) else "32-true"
    return "32-true" if choice == "32" else choice


def data_device(
    cfg: dict[str, Any], data: DataBundle, trainer_kwargs: dict[str, Any]
) -> torch.device | None:
    """The device the training data should live on, or None for the DataLoader path.

    ``data_on_device: auto`` moves in-memory splits to the GPU when training runs on one
    CUDA device; ``on`` forces the same path wherever training runs (the CPU too), ``off``
    never takes it. Several devices keep DataLoaders, which DDP shards per process.
    """
    choice = cfg.get("data_on_device", "auto")
    single = (
        str(trainer_kwargs.get("devices", 1)) == "1"
        and trainer_kwargs.get("num_nodes", 1) == 1
        and trainer_kwargs.get("strategy", "auto") == "auto"
    )
    if choice == "off" or not single or not data.on_device("train"):
        return None
    cuda = _uses_cuda(trainer_kwargs)
    if choice == "auto" and not cuda:
        return None
    return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")


def _loaders(
    data: DataBundle,
    cfg: dict[str, Any],
    val_split: str,
    device: torch.device | None,
    seed: int,
    start_epoch: int,
):
    """(train, validation) batches: served from ``device`` when given, else DataLoaders."""
    if device is None:
        workers = cfg["workers"]
        return (
            data.loader("train", cfg["batch_size"], workers=workers),
            data.loader(val_split, cfg["eval_batch_size"], workers=workers),
        )
    cl = device.type == "cuda"
    train = data.device_loader(
        "train", cfg["batch_size"], device, seed=seed, start_epoch=start_epoch, channels_last=cl
    )
    if data.on_device(val_split):
        val = data.device_loader(val_split, cfg["eval_batch_size"], device, channels_last=cl)
    else:
        val = data.loader(val_split, cfg["eval_batch_size"], workers=cfg["workers"])
    return train, val


def _resolve_teacher(
    teacher: str | os.PathLike,
    data: DataBundle,
    out: Path,
    cfg: dict[str, Any],
    **phase: Any,
) -> nn.Module:
    path = Path(teacher)
    if path.is_file() or str(teacher).endswith(".ckpt"):
        net = load_checkpoint(path)
    elif str(teacher) in list_models():
        tspec = _fit_spec(get_spec(str(teacher), float=True), data)
        tcfg = resolve_recipe(
            "one-step",
            data.name,
            {
                "epochs": cfg["teacher_epochs"] or cfg["epochs"],
                **{
                    k: cfg[k] for k in ("batch_size", "eval_batch_size", "train_batches", "workers")
                },
            },
        )
        tdir = out / "teacher"
        _fit_phase(
            tspec,
            data,
            tdir,
            tcfg,
            weight_decay=tcfg["weight_decay"],
            real_weights=False,
            init=None,
            teacher=None,
            **phase,
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        net = load_checkpoint(selected_checkpoint(tdir, data))
    else:
        raise DwrError(
            f"teacher {str(teacher)!r} is neither a checkpoint file nor a registered model; "
            "give a .ckpt from 'dwr train --float' or a model name (see 'dwr models')"
        )
    spec = getattr(net, "spec", None)
    if spec is not None and spec.num_classes != data.num_classes:
        raise DwrError(
            f"teacher {teacher} predicts {spec.num_classes} classes but {data.name} has "
            f"{data.num_classes}"
        )
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def selected_checkpoint(out: Path, data: DataBundle) -> Path:
    """The checkpoint a finished run reports: the best validation epoch's, or, when ``data``
    has no ``val`` split (so ``best.ckpt`` was chosen on test), the last epoch's."""
    best = out / "best.ckpt"
    return best if "val" in data.splits and best.exists() else out / "last.ckpt"


def train(
    spec: BackboneSpec,
    data: DataBundle,
    out_dir: str | os.PathLike,
    recipe: str | dict = "one-step",
    overrides: dict | None = None,
    teacher: str | os.PathLike | None = None,
    resume: bool = False,
    quiet: bool = False,
    seed: int = 0,
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
) -> dict[str, Any]:
    """Train ``spec`` on ``data`` with a recipe; returns the ``result.json`` dict.

    ``resume=True`` continues from ``out_dir/last.ckpt`` (optimizer, scheduler, epoch, RNG);
    if ``result.json`` is already complete it is returned without training. Without
    ``resume``, a directory holding a previous run is an error (nothing is overwritten).
    ``out_dir`` is locked (:func:`dwr.files.run_lock`) for the whole run: a second process
    training into it gets a :class:`DwrError` naming this one's pid.
    """
    t0 = time.perf_counter()
    cfg = resolve_recipe(recipe, data.name, overrides)
    spec = _fit_spec(spec, data)
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        check_memory(spec, tuple(data.input_size), cfg["batch_size"], training=True)
    check_memory(spec, tuple(data.input_size), cfg["eval_batch_size"])
    trainer_kwargs = {
        "devices": devices,
        "num_nodes": num_nodes,
        "strategy": strategy,
        "accelerator": accelerator,
    }
    check_trainer_settings(**trainer_kwargs)
    with run_lock(out_dir):
        return _train(
            t0, cfg, spec, data, Path(out_dir), teacher, resume, quiet, seed, trainer_kwargs
        )


def _train(
    t0: float,
    cfg: dict[str, Any],
    spec: BackboneSpec,
    data: DataBundle,
    out: Path,
    teacher: str | os.PathLike | None,
    resume: bool,
    quiet: bool,
    seed: int,
    trainer_kwargs: dict[str, Any],
) -> dict[str, Any]:
    result_path = out / "result.json"
    if resume:
        done = _complete_result(result_path, spec, cfg["epochs"])
        if done is not None:
            return done
    elif (out / "last.ckpt").exists() or result_path.exists() or (out / "step1").exists():
        raise DwrError(
            f"{out} already holds a training run; pass --resume to continue it "
            "or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    phase = {
        "resume": resume,
        "quiet": quiet,
        "seed": seed,
        "trainer_kwargs": trainer_kwargs,
    }
    teacher_net = _resolve_teacher(teacher, data, out, cfg, **phase) if teacher else None
    init = None
    if cfg["steps"] == 2:
        _fit_phase(
            spec,
            data,
            out / "step1",
            cfg,
            weight_decay=cfg["step1_weight_decay"],
            real_weights=True,
            init=None,
            teacher=teacher_net,
            **phase,
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        init = model_state(read_checkpoint(out / "step1" / "last.ckpt"))
    is_zero, world_size = _fit_phase(
        spec,
        data,
        out,
        cfg,
        weight_decay=cfg["weight_decay"],
        real_weights=False,
        init=init,
        teacher=teacher_net,
        **phase,
    )
    if not is_zero:
        return {}
    chosen = selected_checkpoint(out, data)
    last_meta = read_checkpoint(out / "last.ckpt")
    history = last_meta.get("callbacks", {}).get("EpochCheckpoint", {})
    net = load_checkpoint(chosen, spec=spec)
    if _uses_cuda(trainer_kwargs):
        net = net.cuda()
    metrics = evaluate(net, data, "test", cfg["eval_batch_size"])
    result = {
        **metrics,
        "epochs": int(last_meta["dwr"]["epoch"]),
        "checkpoint": str(chosen),
        "last_checkpoint": str(out / "last.ckpt"),
        "best_epoch": history.get("best_epoch"),
        "selected_on": "val" if chosen.name == "best.ckpt" else "last epoch",
        "model": spec.name,
        "binary": spec.binary,
        "dataset": data.name,
        "recipe": cfg,
        "teacher": str(teacher) if teacher else None,
        "seed": seed,
        "world_size": world_size,
        "seconds": round(time.perf_counter() - t0, 1),
        "spec": spec.to_dict(),
    }
    write_json(result_path, result)
    return result
