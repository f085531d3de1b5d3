"""``dwr bench`` and ``dwr convert`` take ``package.module:callable`` for any PyTorch BNN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dwr.cli.main import main

ENGINE_TESTS = Path(__file__).resolve().parent.parent / "engine"


@pytest.fixture
def foreign(monkeypatch):
    monkeypatch.syspath_prepend(str(ENGINE_TESTS))  # tests/engine/foreign_models.py


def test_bench_times_a_foreign_model_through_the_front_door(foreign, capsys):
    args = ["bench", "foreign_models:PlainSignNet", "--size", "32", "--repeats", "2", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == "PlainSignNet" and r["input"] == [3, 32, 32]
    assert r["engine"]["min_ms"] > 0 and r["speedup_vs_bnn"] > 0
    assert "torch_float" not in r  # no float twin without a spec


def test_convert_writes_an_engine_file_for_a_foreign_model(foreign, tmp_path, capsys):
    import dwr.engine

    out = tmp_path / "m.dwre"
    args = [
        "convert",
        "foreign_models:FunctionSignNet",
        "-o",
        str(out),
        "--input-size",
        "3",
        "32",
        "32",
    ]
    assert main(args) == 0
    engine = dwr.engine.load(out)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert engine(x).shape == (2, 10)


def test_a_callable_that_does_not_exist_is_one_clean_error(foreign, capsys):
    assert main(["bench", "foreign_models:NoSuchNet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NoSuchNet" in err[0]


@pytest.mark.parametrize("name", ["authors_style", "plain_sign", "autograd_function"])
def test_export_a_foreign_model_to_onnx(foreign, tmp_path, capsys, name):
    """The front door's lowering feeds the exporter too: onnxruntime agrees with the engine
    (both map sign(0) to +1) on a model the project did not write."""
    ort = pytest.importorskip("onnxruntime")
    import torch
    from engine_helpers import randomize
    from foreign_models import FOREIGN_MODELS

    import dwr.engine
    from dwr.export import to_onnx

    cls = FOREIGN_MODELS[name]
    out = tmp_path / "m.onnx"
    assert main(["export", f"foreign_models:{cls.__name__}", "--size", "32", "-o", str(out)]) == 0
    assert f"{cls.__name__}, ONNX opset 17, input batch x 3 x 32 x 32" in capsys.readouterr().out
    torch.manual_seed(0)
    model = randomize(cls(), seed=1).eval()
    x = torch.randn(16, 3, 32, 32)
    proto = to_onnx(model, example_input=x[:1])
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"input": x.numpy()})[0]
    want = dwr.engine.convert(model, x[:1])(x)
    tol = 1e-4 * float(np.abs(want).max())
    same = [np.allclose(got[i], want[i], rtol=1e-4, atol=tol) for i in range(len(x))]
    assert np.mean(same) >= 0.9, same  # an image may hold a tie the two round differently
