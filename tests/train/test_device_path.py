"""GPU training's code paths, run on the CPU: data served from the device, resume after a
kill, the precision flag, the placement rules and the batched non-finite-loss check."""

from __future__ import annotations

import pytest
import torch

from dwr.train import train
from dwr.train.api import data_device, trainer_precision
from dwr.train.callbacks import EpochCheckpoint
from dwr.train.checkpoint import read_checkpoint
from dwr.train.module import BnnModule, NonFiniteLoss

ON = {"epochs": 2, "train_batches": 3, "batch_size": 32, "data_on_device": "on"}


class _Killed(Exception):
    pass


def _weights(path):
    return read_checkpoint(path)["state_dict"]


def test_a_killed_device_run_resumes_to_the_same_weights(tmp_path, digits, tiny, monkeypatch):
    whole = train(tiny(), digits, tmp_path / "whole", overrides=ON, quiet=True)
    original = EpochCheckpoint.on_train_epoch_end

    def killed_after_first_epoch(self, trainer, pl_module):
        original(self, trainer, pl_module)
        raise _Killed  # as a kill right after epoch 1's checkpoint

    monkeypatch.setattr(EpochCheckpoint, "on_train_epoch_end", killed_after_first_epoch)
    with pytest.raises(_Killed):
        train(tiny(), digits, tmp_path / "killed", overrides=ON, quiet=True)
    assert read_checkpoint(tmp_path / "killed" / "last.ckpt")["dwr"]["epoch"] == 1
    monkeypatch.setattr(EpochCheckpoint, "on_train_epoch_end", original)
    resumed = train(tiny(), digits, tmp_path / "killed", overrides=ON, resume=True, quiet=True)
    a, b = _weights(tmp_path / "whole" / "last.ckpt"), _weights(tmp_path / "killed" / "last.ckpt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["top1"] == whole["top1"]


def test_the_device_path_trains_other_batches_than_the_dataloader(tmp_path, digits, tiny):
    """Same seed, other batch order: the switch really changes where batches come from."""
    on = train(tiny(), digits, tmp_path / "on", overrides=ON, quiet=True)
    off = train(
        tiny(), digits, tmp_path / "off", overrides={**ON, "data_on_device": "off"}, quiet=True
    )
    a, b = _weights(on["last_checkpoint"]), _weights(off["last_checkpoint"])
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("precision,dtype", [("bf16-mixed", torch.bfloat16), ("32", torch.float32)])
def test_precision_sets_the_dtype_convolutions_run_in(tmp_path, digits, tiny, precision, dtype):
    seen: set[torch.dtype] = set()
    original = BnnModule.training_step

    def step(self, batch, batch_idx):
        handles = [
            m.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
            for m in self.model.modules()
            if isinstance(m, torch.nn.Conv2d)
        ]
        try:
            return original(self, batch, batch_idx)
        finally:
            for h in handles:
                h.remove()

    cfg = {**ON, "epochs": 1, "train_batches": 1, "precision": precision}
    BnnModule.training_step = step
    try:
        train(tiny(), digits, tmp_path, overrides=cfg, quiet=True)
    finally:
        BnnModule.training_step = original
    assert seen == {dtype}


def test_precision_and_placement_rules(digits):
    cpu = {"accelerator": "cpu", "devices": 1}
    assert trainer_precision({"precision": "auto"}, cpu) == "32-true"
    assert trainer_precision({"precision": "auto"}, {"accelerator": "gpu"}) == "bf16-mixed"
    assert trainer_precision({"precision": "32"}, {"accelerator": "gpu"}) == "32-true"
    assert trainer_precision({"precision": "16-mixed"}, cpu) == "16-mixed"
    assert data_device({"data_on_device": "auto"}, digits, cpu) is None
    assert data_device({"data_on_device": "on"}, digits, cpu) == torch.device("cpu")
    assert data_device({"data_on_device": "off"}, digits, cpu) is None
    ddp = {"accelerator": "cpu", "devices": 2}
    assert data_device({"data_on_device": "on"}, digits, ddp) is None  # DDP keeps DataLoaders


def test_non_finite_loss_is_caught_within_the_check_window():
    module = BnnModule(torch.nn.Linear(2, 2), {"compile": False}, 0.0, {})
    with pytest.raises(NonFiniteLoss, match="at epoch 1, step 3"):
        module._watch_loss(torch.tensor(float("nan")), 2)  # on the CPU: at once
    module._bad = torch.tensor(False)
    module._read_flag(50)  # nothing bad since the last read
    module._bad = torch.tensor(False) | torch.tensor(True)
    with pytest.raises(NonFiniteLoss, match="between steps 51 and 100"):
        module._read_flag(100)
