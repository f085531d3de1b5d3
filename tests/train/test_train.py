import csv
import json

import pytest
import torch

from dwr.backbones import Backbone
from dwr.cli.main import main
from dwr.errors import DwrError
from dwr.train import evaluate, load_checkpoint, read_checkpoint, train

FAST = {"epochs": 2, "train_batches": 4, "batch_size": 32}


def test_train_writes_everything_and_eval_cli_agrees(tmp_path, digits, tiny, capsys):
    out = tmp_path / "run"
    result = train(tiny(), digits, out, overrides=FAST, quiet=True)
    for key in ("top1", "top5", "epochs", "checkpoint", "spec"):
        assert key in result
    assert result["epochs"] == 2 and result["spec"] == tiny().to_dict()
    assert 0 <= result["top1"] <= result["top5"] <= 100
    assert json.loads((out / "result.json").read_text()) == result
    for name in ("last.ckpt", "best.ckpt", "metrics.csv"):
        assert (out / name).is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[0]["images_per_s"]) > 0

    ckpt = read_checkpoint(out / "last.ckpt")
    assert ckpt["dwr"]["epoch"] == 2 and ckpt["dwr"]["recipe"]["epochs"] == 2
    assert ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    model = load_checkpoint(result["checkpoint"])
    assert isinstance(model, Backbone) and not model.training and model.spec == tiny()
    assert evaluate(model, digits)["top1"] == pytest.approx(result["top1"])

    assert main(["eval", result["checkpoint"], "--dataset", "digits", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["top1"] == pytest.approx(result["top1"])
    assert printed["top5"] == pytest.approx(result["top5"])

    # a finished run is returned as is on resume; without --resume nothing is overwritten
    stamp = (out / "last.ckpt").stat().st_mtime_ns
    assert train(tiny(), digits, out, overrides=FAST, resume=True, quiet=True) == result
    with pytest.raises(DwrError, match="already holds a training run"):
        train(tiny(), digits, out, overrides=FAST, quiet=True)
    assert (out / "last.ckpt").stat().st_mtime_ns == stamp

    # a checkpoint of another architecture is refused, naming both
    other = tiny(widths=[8, 8, 16])
    with pytest.raises(DwrError, match=r"is for resnet20_cifar .*widths \[8, 8, 8\].*\[8, 8, 16\]"):
        load_checkpoint(out / "last.ckpt", spec=other)
    with pytest.raises(DwrError, match=r"checkpoint of .*\[8, 8, 8\].*not .*\[8, 8, 16\]"):
        train(other, digits, out, overrides={**FAST, "epochs": 3}, resume=True, quiet=True)


def test_the_reported_epoch_is_never_chosen_on_the_test_split(tmp_path, tiny):
    """With a validation split the best validation epoch is reported; without one, every
    per-epoch number is a test number, so the last epoch is reported instead of the best."""
    from dwr.data import load_dataset

    cfg = {"epochs": 3, "batch_size": 32, "train_batches": 6}
    plain = train(tiny(), load_dataset("digits"), tmp_path / "a", overrides=cfg, quiet=True)
    assert plain["selected_on"] == "last epoch" and plain["checkpoint"].endswith("last.ckpt")
    held = load_dataset("digits", val_fraction=0.1)
    result = train(tiny(), held, tmp_path / "b", overrides=cfg, quiet=True)
    assert result["selected_on"] == "val" and result["checkpoint"].endswith("best.ckpt")
    rows = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    best = max(rows, key=lambda r: float(r["val_top1"]))  # the first of equal epochs
    assert result["best_epoch"] == int(best["epoch"])


def test_learning_happens(tmp_path, digits, tiny):
    cfg = {"epochs": 3, "batch_size": 32, "train_batches": 20}
    result = train(tiny(float=True), digits, tmp_path, overrides=cfg, quiet=True)
    assert result["top1"] > 20  # chance is 10%; 31% here


def test_two_step_trains_real_weights_then_binary(tmp_path, digits, tiny):
    result = train(
        tiny(), digits, tmp_path, recipe="two-step", overrides=FAST | {"epochs": 1}, quiet=True
    )
    step1 = read_checkpoint(tmp_path / "step1" / "last.ckpt")
    final = read_checkpoint(tmp_path / "last.ckpt")
    assert step1["dwr"]["real_weights"] is True and final["dwr"]["real_weights"] is False
    assert step1["dwr"]["recipe"]["optimizer"] == "adam"
    # step 2 starts from step 1's weights: the stem barely moved in one short epoch
    s1, s2 = (
        step1["state_dict"]["model.stem.conv.weight"],
        final["state_dict"]["model.stem.conv.weight"],
    )
    fresh = torch.nn.Conv2d(3, 8, 3).weight
    assert (s1 - s2).abs().mean() < (s1.abs().mean() + fresh.abs().mean()) / 4
    real = load_checkpoint(tmp_path / "step1" / "last.ckpt")
    convs = [m for m in real.modules() if type(m).__name__ == "BinaryConv2d"]
    assert all(c.weight_binarizer is None and c.input_binarizer is not None for c in convs)
    binary = load_checkpoint(result["checkpoint"])
    convs = [m for m in binary.modules() if type(m).__name__ == "BinaryConv2d"]
    assert all(c.weight_binarizer is not None for c in convs)


def test_distillation_from_checkpoint_teacher(tmp_path, digits, tiny):
    teacher = train(tiny(float=True), digits, tmp_path / "t", overrides=FAST, quiet=True)
    result = train(
        tiny(), digits, tmp_path / "s", overrides=FAST, teacher=teacher["checkpoint"], quiet=True
    )
    assert result["teacher"] == teacher["checkpoint"] and result["epochs"] == 2
    with pytest.raises(DwrError, match="neither a checkpoint file nor a registered model"):
        train(tiny(), digits, tmp_path / "x", overrides=FAST, teacher="nonet", quiet=True)


def test_teacher_by_name_is_trained_first(tmp_path, digits, tiny):
    cfg = FAST | {"epochs": 1, "train_batches": 2, "teacher_epochs": 1}
    result = train(tiny(), digits, tmp_path, overrides=cfg, teacher="resnet20_cifar", quiet=True)
    teacher = load_checkpoint(tmp_path / "teacher" / "best.ckpt")
    assert teacher.spec.name == "resnet20_cifar" and teacher.spec.binary is False
    assert result["teacher"] == "resnet20_cifar" and result["epochs"] == 1


def test_resume_with_more_epochs_extends_the_schedule(tmp_path, digits, tiny):
    cfg = {"epochs": 1, "train_batches": 3, "batch_size": 32}
    train(tiny(), digits, tmp_path, overrides=cfg, quiet=True)
    key = "model.stages.0.0.conv.weight"
    before = read_checkpoint(tmp_path / "last.ckpt")["state_dict"][key]
    result = train(tiny(), digits, tmp_path, overrides=cfg | {"epochs": 2}, resume=True, quiet=True)
    assert result["epochs"] == 2
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # the cosine now spans 6 steps, so epoch 2 trains (a stale 3-step schedule would give lr 0)
    after = read_checkpoint(tmp_path / "last.ckpt")["state_dict"][key]
    assert not torch.equal(before, after)
