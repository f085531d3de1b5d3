"""``dwr bench``: runs end to end on a small model and reports all three runners."""

from __future__ import annotations

import json

from dwr.cli.main import main


def test_bench_json(capsys):
    assert main(["bench", "resnet20_cifar_dwr", "--repeats", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "resnet20_cifar_dwr" and out["threads"] == 1 and out["batch"] == 1
    for key in ("engine", "torch_float", "torch_bnn"):
        assert out[key]["min_ms"] > 0
    assert out["speedup_vs_float"] > 0


def test_bench_table(capsys):
    assert (
        main(["bench", "vgg11_cifar_dwr", "--repeats", "1", "--threads", "2", "--batch", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "dwr engine" in out and "torch float32" in out and "float-simulated" in out


def test_bench_bad_input(capsys, tmp_path):
    assert main(["bench", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing.ckpt")]) == 2
    assert main(["bench", "resnet20_cifar", "--threads", "0"]) == 2
