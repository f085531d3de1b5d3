"""A model trained by ``dwr train`` on digits runs on the engine with the same predictions."""

from __future__ import annotations

import torch

import dwr
import dwr.engine as engine
from dwr.data import load_dataset
from dwr.train import evaluate, load_checkpoint, train


def test_trained_digits_model_agrees_with_pytorch(tmp_path):
    data = load_dataset("digits")
    spec = dwr.get_spec("resnet20_cifar", widths=[16, 32, 64], depths=[1, 1, 1])
    result = train(spec, data, tmp_path, overrides={"epochs": 4}, quiet=True, seed=0)
    model = load_checkpoint(result["checkpoint"]).eval()
    compiled = engine.convert(model)
    differ = total = correct_engine = 0
    ties = []
    for x, y in data.loader("test", batch_size=120):
        with torch.no_grad():
            ref = model(x)
        got = compiled(x)
        mismatch = got.argmax(1) != ref.argmax(1)
        differ += int(mismatch.sum())
        total += len(y)
        correct_engine += int((got.argmax(1) == y).sum())
        for i in mismatch.nonzero().flatten().tolist():
            top2 = ref[i].topk(2).values
            ties.append(float(top2[0] - top2[1]))
    torch_top1 = evaluate(model, data, "test")["top1"]
    engine_top1 = 100.0 * correct_engine / total
    msg = (
        f"{differ}/{total} test images differ (torch top-1 {torch_top1:.2f}%, engine "
        f"{engine_top1:.2f}%); PyTorch's top-2 logit margins there: {ties} -- a difference "
        "should only come from a value binarized within float rounding of 0 (a threshold tie)"
    )
    print(msg)
    assert total == 360
    assert torch_top1 > 50, "the model did not train; the agreement would prove little"
    assert differ <= 0.005 * total, msg
    assert abs(engine_top1 - torch_top1) <= 0.5, msg
