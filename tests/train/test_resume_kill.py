"""Kill a real ``dwr train`` with SIGKILL after its first checkpoint, resume, compare."""

import csv
import json
import time

import pytest
import torch

ARGS = ["--epochs", "6", "--batch-size", "32", "--set", "train_batches=6", "--quiet", "--json"]


def _run(cli, args, out):
    p = cli([*args, "--out", str(out)])
    stdout, stderr = p.communicate(timeout=240)
    assert p.returncode == 0, stderr
    return json.loads(stdout)


@pytest.mark.timeout(300)
def test_sigkill_then_resume_loses_no_work(tmp_path, cli, tiny_args):
    args = ["train", *tiny_args, *ARGS]
    out = tmp_path / "killed"
    p = cli([*args, "--out", str(out)])
    deadline = time.time() + 180
    while not (out / "last.ckpt").exists():
        assert p.poll() is None, p.communicate()[1]
        assert time.time() < deadline
        time.sleep(0.02)
    p.kill()  # SIGKILL, at any moment after the first checkpoint
    p.wait()
    assert not (out / "result.json").exists()
    killed_at = torch.load(out / "last.ckpt", weights_only=True)["dwr"]["epoch"]
    assert 1 <= killed_at < 6

    resumed = _run(cli, [*args, "--resume"], out)
    assert resumed["epochs"] == 6
    assert json.loads((out / "result.json").read_text()) == resumed
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]

    # the same run without interruption: same losses epoch by epoch (optimizer, scheduler and
    # RNG state were restored), same final accuracy
    ref = _run(cli, args, tmp_path / "straight")
    ref_rows = list(csv.DictReader(open(tmp_path / "straight" / "metrics.csv")))
    for a, b in zip(rows, ref_rows, strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-3, abs=1e-3)
        assert float(a["lr"]) == pytest.approx(float(b["lr"]))
    assert resumed["top1"] == pytest.approx(ref["top1"], abs=0.6)
