"""Lightning callbacks: per-epoch checkpoints + metrics.csv, and a quiet-aware progress bar."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from dwr.files import atomic_write_text

#: ``images_per_s`` counts the training steps alone; ``seconds`` is the whole epoch.
COLUMNS = ("epoch", "loss", "acc", "val_top1", "val_top5", "lr", "images_per_s", "seconds")


class EpochCheckpoint(pl.Callback):
    """After every epoch: ``best.ckpt`` (if validation top-1 improved), then ``last.ckpt``,
    then ``metrics.csv``.

    Best is written before last: a crash in between leaves ``last.ckpt`` one epoch behind,
    so a resumed run redoes that epoch and rewrites both consistently. The metrics history
    lives in the checkpoint, so ``metrics.csv`` never holds rows of lost epochs.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out = Path(out_dir)
        self.best = -math.inf
        self.best_epoch = 0
        self.history: list[dict[str, Any]] = []
        self._t0 = time.perf_counter()
        self._n = 0
        self._t_train: float | None = None

    @property
    def state_key(self) -> str:
        return "EpochCheckpoint"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._n, self._t_train = time.perf_counter(), 0, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._n += int(batch[0].shape[0])
        if batch_idx + 1 >= trainer.num_training_batches:
            # the training steps' time, without validation and checkpoints; one wait for the
            # device per epoch, so the queued steps count
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize(pl_module.device)
            self._t_train = time.perf_counter() - self._t0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        m = trainer.callback_metrics
        seconds = time.perf_counter() - self._t0
        train_s = self._t_train if self._t_train is not None else seconds
        world = max(1, trainer.world_size)

        def val(key: str) -> float:
            v = m.get(key)
            return round(float(v), 4) if v is not None else float("nan")

        row = {
            "epoch": trainer.current_epoch + 1,
            "loss": val("train_loss"),
            "acc": val("train_acc"),
            "val_top1": val("val_top1"),
            "val_top5": val("val_top5"),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "images_per_s": round(self._n * world / max(train_s, 1e-9), 1),
            "seconds": round(seconds, 2),
        }
        self.history.append(row)
        top1 = row["val_top1"]
        if not math.isnan(top1) and top1 > self.best:
            self.best, self.best_epoch = top1, row["epoch"]
            trainer.save_checkpoint(self.out / "best.ckpt", weights_only=False)
        trainer.save_checkpoint(self.out / "last.ckpt", weights_only=False)
        if trainer.is_global_zero:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(self.history)
            atomic_write_text(self.out / "metrics.csv", buf.getvalue())

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.history = list(state["history"])


class ProgressBar(TQDMProgressBar):
    """TQDM bar on stderr (stdout stays for results) that keeps one line per epoch:
    epoch, loss, accuracy, images/s and validation top-1."""

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=True)

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(
            desc=self.train_description,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)  # validation is short; its top-1 shows on the epoch line

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
