"""A model trained by ``dwr train`` on digits runs on the engine with the same predictions."""

from __future__ import annotations

import numpy as np
import torch

import dwr
import dwr.engine as engine
from dwr.data import load_dataset
from dwr.train import evaluate, load_checkpoint, train
from sign_ties import reference_with_engine_ties


def test_trained_digits_model_agrees_with_pytorch(tmp_path):
    data = load_dataset("digits")
    spec = dwr.get_spec("resnet20_cifar", widths=[16, 32, 64], depths=[1, 1, 1])
    result = train(spec, data, tmp_path, overrides={"epochs": 4}, quiet=True, seed=0)
    model = load_checkpoint(result["checkpoint"]).eval()
    compiled = engine.convert(model)
    flips = total = correct_engine = 0
    for x, y in data.loader("test", batch_size=120):
        # exact: a difference may only come from a value binarized within float rounding of
        # 0, decided either way by either side (sign_ties checks that, and settles it)
        got, ref, ties = reference_with_engine_ties(model, compiled, x)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max()))
        flips, total = flips + ties, total + len(y)
        correct_engine += int((torch.from_numpy(got).argmax(1) == y).sum())
    torch_top1 = evaluate(model, data, "test")["top1"]
    engine_top1 = 100.0 * correct_engine / total
    print(f"engine top-1 {engine_top1:.2f}%, torch {torch_top1:.2f}%, {flips} ties")
    assert total == 360
    assert torch_top1 > 50, "the model did not train; the agreement would prove little"
    assert abs(engine_top1 - torch_top1) <= 0.5
