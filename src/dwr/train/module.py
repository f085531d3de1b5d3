"""The Lightning module: a thin wrapper that wires a backbone to the losses and the recipe.

On an accelerator nothing in a training step waits for the device: the non-finite-loss check
is accumulated there and read every :data:`CHECK_EVERY` steps and after an epoch's last step,
before its checkpoint is written (on the CPU it is read every step, as that costs nothing).
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from dwr.train.checkpoint import FORMAT, rng_state, set_rng_state
from dwr.train.losses import topk_correct, training_loss
from dwr.train.optim import make_optimizer, make_scheduler

#: Steps between two reads of the non-finite-loss flag on an accelerator.
CHECK_EVERY = 50


class NonFiniteLoss(RuntimeError):
    """Raised from a training step whose loss is NaN or infinite."""


class BnnModule(pl.LightningModule):
    """Trains ``model`` with ``cfg`` (a resolved recipe); optional frozen ``teacher``."""

    def __init__(
        self,
        model: nn.Module,
        cfg: dict[str, Any],
        weight_decay: float,
        meta: dict[str, Any],
        teacher: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.cfg, self.weight_decay, self.meta = cfg, weight_decay, meta
        # Kept out of the module tree: not trained, not saved, not wrapped by DDP.
        self.__dict__["teacher"] = teacher
        self.__dict__["_forward"] = (
            # dynamic=False: evaluation's other batch size gets a graph of its own instead of
            # turning the training graph into a slower dynamic-shape one
            torch.compile(model, mode=cfg.get("compile_mode", "default"), dynamic=False)
            if cfg.get("compile")
            else model
        )
        self._t_last: float | None = None
        self._ips: float | None = None
        self._bad: torch.Tensor | None = None  # any non-finite loss since the last read
        self._checked_step = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device).eval()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        t_logits = None
        if self.teacher is not None:
            with torch.no_grad():
                t_logits = self.teacher(x)
        loss = training_loss(
            logits, y, t_logits, self.cfg["label_smoothing"], self.cfg["distill_weight"]
        )
        self._watch_loss(loss.detach(), batch_idx)
        acc = (logits.argmax(1) == y).float().mean() * 100
        n = x.shape[0]
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=n)
        self.log("acc", acc, prog_bar=True, on_step=True, on_epoch=False)
        self.log("train_acc", acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def _watch_loss(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Raise :class:`NonFiniteLoss` once a non-finite loss is seen (at once on the CPU,
        within :data:`CHECK_EVERY` steps on an accelerator, where a read waits for the device)."""
        bad = ~torch.isfinite(loss)
        if loss.device.type == "cpu":
            if bad:
                raise NonFiniteLoss(
                    f"loss became {loss.item()} at epoch {self.current_epoch + 1}, "
                    f"step {batch_idx + 1}"
                )
            return
        self._bad = bad if self._bad is None else self._bad | bad
        if (batch_idx + 1) % CHECK_EVERY == 0:
            self._read_flag(batch_idx + 1)

    def _read_flag(self, step: int) -> None:
        first, self._checked_step = self._checked_step + 1, step
        if self._bad is not None and bool(self._bad):
            self._bad = None
            raise NonFiniteLoss(
                f"loss became non-finite at epoch {self.current_epoch + 1}, "
                f"between steps {first} and {step}"
            )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self._bad is not None and batch_idx + 1 >= self.trainer.num_training_batches:
            # the epoch's last step: read before validation and before its checkpoint is saved
            self._read_flag(batch_idx + 1)
        now = time.perf_counter()
        if self._t_last is not None and now > self._t_last:
            ips = batch[0].shape[0] / (now - self._t_last)
            self._ips = ips if self._ips is None else 0.8 * self._ips + 0.2 * ips
            self.log("img/s", self._ips, prog_bar=True, on_step=True, on_epoch=False)
        self._t_last = now

    def on_train_epoch_start(self) -> None:
        self._t_last = time.perf_counter()
        self._checked_step = 0

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        c1, c5 = topk_correct(logits, y)
        n = x.shape[0]
        self.log("val_top1", 100.0 * c1 / n, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val_top5", 100.0 * c5 / n, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        fused = next(self.model.parameters()).is_cuda  # one kernel per step, not one per tensor
        opt = make_optimizer(self.model, self.cfg, self.weight_decay, fused=fused)
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, math.ceil(total / max(1, self.trainer.max_epochs or 1)))
        sched = make_scheduler(opt, self.cfg, total, per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dwr"] = {
            "format": FORMAT,
            **self.meta,
            "recipe": dict(self.cfg),
            "epoch": self.current_epoch + 1,
            "rng": rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("dwr", {}).get("rng")
        if rng is not None:
            set_rng_state(rng)
