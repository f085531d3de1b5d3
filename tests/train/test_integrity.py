"""Checkpoint integrity, a full disk while writing one, and one run per directory."""

import errno
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from dwr import files
from dwr.cli.main import main
from dwr.errors import DwrError
from dwr.train.checkpoint import UnverifiedCheckpoint, load_checkpoint, read_checkpoint

FAST = ["--batch-size", "32", "--set", "train_batches=2", "--quiet"]
HOLD = """
import sys, time
from dwr.files import run_lock
with run_lock(sys.argv[1], *sys.argv[2:]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny):
    from dwr.data import load_dataset
    from dwr.train import train

    out = tmp_path_factory.mktemp("integrity")
    train(
        tiny(), load_dataset("digits"), out, overrides={"epochs": 1, "train_batches": 2}, quiet=True
    )
    return out


def test_checkpoint_has_a_checksum_that_verifies(run_dir):
    ckpt = read_checkpoint(run_dir / "last.ckpt")
    assert len(ckpt["dwr"]["checksum"]["sha256"]) == 64
    load_checkpoint(run_dir / "last.ckpt")


def test_flipped_byte_and_nan_weights_are_refused(run_dir, tmp_path, capsys):
    ckpt = torch.load(run_dir / "last.ckpt", weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.dim() == 4)
    ckpt["state_dict"][name].view(-1).view(torch.uint8)[5] ^= 0x10
    torch.save(ckpt, tmp_path / "flip.ckpt")
    assert main(["eval", str(tmp_path / "flip.ckpt")]) == 2
    assert "do not match its checksum" in _err(capsys)

    from dwr.train.checkpoint import seal

    ckpt["state_dict"][name].view(-1)[0] = math.nan
    torch.save(seal(ckpt), tmp_path / "nan.ckpt")  # a valid checksum of NaN weights
    with pytest.raises(DwrError, match=f"non-finite weights .*{name}"):
        load_checkpoint(tmp_path / "nan.ckpt")


def test_old_checkpoint_without_checksum_loads_with_a_warning(run_dir, tmp_path, capsys):
    ckpt = torch.load(run_dir / "last.ckpt", weights_only=True)
    del ckpt["dwr"]["checksum"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    with pytest.warns(UnverifiedCheckpoint, match="unverified"):
        load_checkpoint(tmp_path / "old.ckpt")
    assert main(["eval", str(tmp_path / "old.ckpt"), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"top1"' in captured.out
    assert "dwr: warning: checkpoint" in captured.err and "unverified" in captured.err


def test_full_disk_while_writing_a_checkpoint(tmp_path, capsys, monkeypatch, tiny_args):
    """Epoch 1 writes its checkpoints; epoch 2's checkpoint write hits ENOSPC: one clean line,
    exit 2, and epoch 1's last.ckpt intact, loadable and resumable."""
    out = tmp_path / "run"
    real_write = files._write_all

    def write(f, data):
        if (out / "last.ckpt").exists() and len(data) > 10_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(f, data)

    monkeypatch.setattr(files, "_write_all", write)
    argv = ["train", *tiny_args, "--out", str(out), "--epochs", "2", *FAST]
    assert main(argv) == 2
    err = _err(capsys)
    assert "cannot write" in err and "No space left on device" in err and "ckpt" in err
    assert read_checkpoint(out / "last.ckpt")["dwr"]["epoch"] == 1
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(files, "_write_all", real_write)
    assert main([*argv, "--resume"]) == 0  # the disk has room again: go on from epoch 1
    assert read_checkpoint(out / "last.ckpt")["dwr"]["epoch"] == 2


def _hold(path, *name):
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), *name], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "locked"
    return p


@pytest.mark.timeout(120)
def test_two_trainings_on_one_directory(tmp_path, capsys, cli, tiny_args):
    """A real ``dwr train`` holds its --out; a second one there exits 2 naming its pid; once
    the first is killed (-9), its stale lock is taken over."""
    out = tmp_path / "shared"
    first = cli(["train", *tiny_args, "--out", str(out), "--epochs", "50", *FAST])
    lock = out / ".lock"
    deadline = time.monotonic() + 100
    while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first training never took the lock"
        time.sleep(0.2)
    try:
        argv = ["train", *tiny_args, "--out", str(out), "--epochs", "1", *FAST]
        assert main(argv) == 2
        err = _err(capsys)
        assert f"is in use by another dwr process (pid {first.pid})" in err
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert main([*argv, "--resume"]) == 0  # stale lock of a killed run: taken over


@pytest.mark.parametrize("command", ["run", "prune", "paper_table"])
def test_run_prune_and_paper_table_take_the_lock(tmp_path, capsys, command, run_dir):
    import importlib.util
    from pathlib import Path

    out = tmp_path / "d"
    if command == "paper_table":
        where = Path(__file__).resolve().parents[2] / "benchmarks" / "paper_table.py"
        spec = importlib.util.spec_from_file_location("paper_table_lock", where)
        pt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pt)
        argv = ["--out", str(out), "--docs", str(tmp_path / "docs"), "--data-dir", str(tmp_path)]
        lock_name = pt.job_path(pt.parse_args(argv)).with_suffix(".lock").name
        holder = _hold(out / "jobs", lock_name)
        run = lambda: pt.cli(argv)  # noqa: E731
    else:
        holder = _hold(out)
        if command == "run":
            run = lambda: main(["run", "--out", str(out)])  # noqa: E731
        else:
            ckpt = str(run_dir / "last.ckpt")
            argv = ["prune", ckpt, "--model", "resnet20_cifar", "--out", str(out / "p.json")]
            run = lambda: main(argv)  # noqa: E731
    try:
        assert run() == 2
        assert f"pid {holder.pid}" in _err(capsys)
    finally:
        holder.kill()
        holder.wait(10)


def test_training_memory_is_estimated_before_building(tmp_path, capsys, monkeypatch, tiny_args):
    import dwr.limits

    monkeypatch.setattr(dwr.limits, "physical_memory", lambda: 2**30)  # a 1 GiB machine
    argv = ["train", *tiny_args, "--out", str(tmp_path / "o"), "--batch-size", "8192", "--quiet"]
    assert main(argv) == 2
    err = _err(capsys)
    assert "training resnet20_cifar" in err and "needs about" in err and "1.0 GiB" in err
    assert not (tmp_path / "o").exists()
