import json

import pytest


@pytest.mark.timeout(120)
def test_ddp_two_cpu_processes(tmp_path, cli, tiny_args):
    out = tmp_path / "ddp"
    args = ["train", *tiny_args, "--out", str(out), "--epochs", "1", "--batch-size", "16"]
    args += ["--set", "train_batches=3", "--devices", "2", "--strategy", "ddp"]
    args += ["--accelerator", "cpu", "--quiet", "--json"]
    p = cli(args)
    stdout, stderr = p.communicate(timeout=110)
    assert p.returncode == 0, stderr
    result = json.loads(stdout)  # only rank 0 prints
    assert result["world_size"] == 2 and result["epochs"] == 1
    assert (out / "last.ckpt").is_file() and (out / "result.json").is_file()
