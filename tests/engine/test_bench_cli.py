"""``dwr bench``: runs end to end on a small model and reports all three runners."""

from __future__ import annotations

import json

from dwr.cli.main import main
from dwr.engine.cpu import cpu_info, describe_cpu


def test_bench_json(capsys):
    assert main(["bench", "resnet20_cifar_dwr", "--repeats", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "resnet20_cifar_dwr" and out["threads"] == 1 and out["batch"] == 1
    for key in ("engine", "torch_float", "torch_bnn"):
        assert out[key]["min_ms"] > 0
    assert out["speedup_vs_float"] > 0
    assert out["cpu"]["model"] and out["kernel"] in out["cpu"]["kernel_isas"]


def test_bench_table(capsys):
    assert (
        main(["bench", "vgg11_cifar_dwr", "--repeats", "1", "--threads", "2", "--batch", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "dwr engine" in out and "torch float32" in out and "float-simulated" in out
    assert "avx512:" in out and "kernels:" in out


CPUINFO = """processor\t: 0
model name\t: Some CPU 9000
flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni avx512_vpopcntdq sse4_2

processor\t: 1
model name\t: Other
"""


def test_cpu_info_reads_the_model_and_avx512_features(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpu_info(path)
    assert info["model"] == "Some CPU 9000"
    assert info["avx512"] == ["f", "bw", "vnni", "vpopcntdq"]
    assert "avx512: f bw vnni vpopcntdq" in describe_cpu(info)
    path.write_text(CPUINFO.replace("avx512f avx512bw avx512_vnni avx512_vpopcntdq ", ""))
    assert "avx512: none" in describe_cpu(cpu_info(path))
    assert cpu_info(tmp_path / "missing")["model"]  # no cpuinfo: platform's name


def test_bench_bad_input(capsys, tmp_path):
    assert main(["bench", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing.ckpt")]) == 2
    assert main(["bench", "resnet20_cifar", "--threads", "0"]) == 2
