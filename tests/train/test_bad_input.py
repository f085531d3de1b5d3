"""Bad input through the CLI: one line on stderr, exit code 2, nothing overwritten."""

import pytest

from dwr.cli.main import main

FAST = ["--epochs", "1", "--batch-size", "32", "--set", "train_batches=2", "--quiet"]


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    from dwr.data import load_dataset
    from dwr.train import train

    out = tmp_path_factory.mktemp("run")
    train(
        tiny(),
        load_dataset("digits"),
        out,
        overrides={"epochs": 1, "train_batches": 2},
        quiet=True,
    )
    return out


def test_missing_cifar_directory(tmp_path, capsys, tiny_args):
    argv = ["train", *tiny_args, "--dataset", "cifar10", "--data-root", str(tmp_path / "none")]
    assert main([*argv, "--out", str(tmp_path / "o"), *FAST]) == 2
    err = _err(capsys)
    assert "no cifar10 data at" in err and "--download" in err


def test_unknown_recipe_key(tmp_path, capsys, tiny_args):
    argv = ["train", *tiny_args, "--out", str(tmp_path), *FAST, "--set", "learning_rate=1"]
    assert main(argv) == 2
    assert "unknown recipe key 'learning_rate'" in _err(capsys)
    assert not any(tmp_path.iterdir())


def test_empty_imagefolder(tmp_path, capsys, tiny_args):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "val" / "a").mkdir(parents=True)
    argv = ["train", *tiny_args, "--dataset", "imagefolder", "--data-root", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "no images in" in _err(capsys)


def test_truncated_checkpoint(trained, tmp_path, capsys):
    data = (trained / "last.ckpt").read_bytes()
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    assert main(["eval", str(bad), "--dataset", "digits"]) == 2
    err = _err(capsys)
    assert "cut.ckpt is truncated or corrupt" in err
    other = tmp_path / "x.ckpt"
    other.write_bytes(b"hello")
    assert main(["eval", str(other)]) == 2
    assert "x.ckpt" in _err(capsys)


def test_resume_with_another_architecture(trained, capsys, tiny_args):
    stamp = (trained / "last.ckpt").stat().st_mtime_ns
    argv = ["train", *tiny_args[:-3], "8", "8", "16", "--out", str(trained), *FAST, "--epochs", "2"]
    assert main([*argv, "--resume"]) == 2
    err = _err(capsys)
    assert "last.ckpt is a checkpoint of resnet20_cifar" in err and "[8, 8, 16]" in err
    assert (trained / "last.ckpt").stat().st_mtime_ns == stamp


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys, monkeypatch, tiny_args):
    import torch

    from dwr.train import module

    calls = {"n": 0}
    real = module.training_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 2 else loss

    monkeypatch.setattr(module, "training_loss", poisoned)
    out = tmp_path / "nan"
    argv = ["train", *tiny_args, "--out", str(out), *FAST, "--epochs", "3"]
    assert main(argv) == 2
    err = _err(capsys)
    assert "loss became nan at epoch 2" in err and "last.ckpt is kept" in err
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    assert ckpt["dwr"]["epoch"] == 1
    assert not (out / "result.json").exists()
