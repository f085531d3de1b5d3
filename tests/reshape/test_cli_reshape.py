import json

import pytest

from dwr.cli.main import main


def test_reshape_json(capsys):
    assert main(["reshape", "resnet18_cifar", "--factor", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["depths"] == [1, 1, 1, 1] and out["widths"] == [91, 181, 362, 724]
    for key in ("depths", "widths", "bops", "flops", "ops", "activations"):
        assert key in out and key in out["original"]
    assert out["original"]["depths"] == [2, 2, 2, 2]
    assert out["original"]["activations"] / out["activations"] == pytest.approx(1.41, abs=0.01)
    assert out["activation_ratio"] == pytest.approx(1.41, abs=0.01)


def test_reshape_table_side_by_side(capsys):
    assert main(["reshape", "vgg_small_cifar", "--factor", "2"]) == 0
    out = capsys.readouterr().out
    assert "original" in out and "reshaped" in out
    assert "[181,362,724]" in out and "[128,256,512]" in out
    for key in ("bops", "flops", "ops", "params", "activations"):
        assert key in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["reshape", "resnet20_cifar", "--factor", "0"], "factor must be a positive number"),
        (["reshape", "resnet20_cifar", "--factor", "-2"], "factor must be a positive number"),
        (["reshape", "resnet18_cifar", "--factor", "1e7"], "factor 1e+07 is absurd"),
        (["reshape", "nosuchnet", "--factor", "2"], "unknown model 'nosuchnet'"),
        (["prune", "/nonexistent/x.ckpt", "--model", "resnet20_cifar"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1
