import json

import pytest

from dwr.cli.main import main


def test_summary_json(capsys):
    assert main(["summary", "birealnet18", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("bops", "flops", "ops", "params", "activations", "depths", "widths"):
        assert key in out
    assert out["bops"] == pytest.approx(1.68e9, rel=0.02)


def test_summary_table_with_overrides(capsys):
    args = [
        "summary",
        "resnet18_cifar",
        "--depths",
        "1",
        "1",
        "1",
        "1",
        "--widths",
        "91",
        "181",
        "362",
        "724",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "stages.3.1.conv" in out and "stages.3.2.conv" not in out
    assert "BOPs" in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["summary", "nosuchnet"], "unknown model 'nosuchnet'"),
        (["summary", "resnet18_cifar", "--depths", "1", "2"], "depths has 2 values"),
        (["summary", "resnet18_cifar", "--widths", "64", "0", "3", "4"], "width must be >= 1"),
        (["summary", "vgg11_cifar", "--input-size", "3", "8", "8"], "too small"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1
