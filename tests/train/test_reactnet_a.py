"""ReActNet-A end to end at toy size: two-step training, exact engine, naive reshaping."""

from __future__ import annotations

import json

import torch

import dwr
from dwr.cli.main import main
from dwr.engine import convert
from dwr.train import load_checkpoint, train
from sign_ties import assert_engine_matches

SLIM = {"depths": [1, 1, 1, 2, 1], "widths": [8, 16, 16, 24, 32], "stem_width": 8}


def test_reactnet_a_trains_two_step_and_runs_exactly_on_the_engine(tmp_path, digits):
    spec = dwr.get_spec("reactnet_a", num_classes=digits.num_classes, **SLIM)
    overrides = {"epochs": 1, "train_batches": 3, "batch_size": 32}
    result = train(spec, digits, tmp_path, recipe="two-step", overrides=overrides, quiet=True)
    model = load_checkpoint(result["checkpoint"])
    assert model.spec == spec and 0 <= result["top1"] <= 100
    x = torch.randn(16, *digits.input_size, generator=torch.Generator().manual_seed(0))
    assert_engine_matches(model, convert(model), x, rtol=1e-3)  # ties aside, exact
    assert any(op.kind == "binary_conv" and op.k == 1 for op in convert(model).ops)


def test_reactnet_a_reshapes(capsys):
    assert main(["reshape", "reactnet_a", "--factor", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["depths"] == [1, 1, 1, 3, 1]  # depth / 2, at least 1
    assert out["widths"] == [91, 181, 362, 724, 1448]  # width * sqrt(2)
    assert out["activation_ratio"] > 1.2
