import math

import pytest
import torch

from dwr.errors import DwrError
from dwr.train.optim import LrFactor, param_groups
from dwr.train.recipes import parse_set, resolve_recipe


def test_named_recipes_and_dataset_defaults():
    one = resolve_recipe("one-step")
    assert one["optimizer"] == "sgd" and one["momentum"] == 0.9 and one["schedule"] == "cosine"
    assert one["steps"] == 1 and one["epochs"] == 400
    two = resolve_recipe("two-step")
    assert two["optimizer"] == "adam" and two["steps"] == 2
    assert two["step1_weight_decay"] == 1e-5 and two["weight_decay"] == 0.0
    assert resolve_recipe("one-step", "digits")["epochs"] < 30
    assert resolve_recipe("one-step", "cifar10")["lr"] == 0.1


def test_overrides_yaml_and_types(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("base: two-step\nepochs: 3\nlr: 1e-3\nschedule: cosine\n")
    cfg = resolve_recipe(str(f), "digits", {"batch_size": "16"})
    assert cfg["recipe"] == "two-step" and cfg["epochs"] == 3 and cfg["lr"] == 1e-3
    assert cfg["batch_size"] == 16 and cfg["schedule"] == "cosine"
    assert resolve_recipe({"base": "one-step", "lr": 0.2})["lr"] == 0.2
    assert parse_set(["lr=0.05", "epochs=3", "compile=true"]) == {
        "lr": 0.05,
        "epochs": 3,
        "compile": True,
    }


@pytest.mark.parametrize(
    "recipe,overrides,needle",
    [
        ("one-step", {"lr_max": 1}, "unknown recipe key 'lr_max'"),
        ("one-step", {"epochs": "many"}, "'epochs' must be a int"),
        ("one-step", {"optimizer": "lamb"}, "'optimizer' must be one of"),
        ("three-step", None, "unknown recipe 'three-step'"),
        ("missing.yaml", None, "recipe file missing.yaml does not exist"),
    ],
)
def test_bad_recipes(recipe, overrides, needle):
    with pytest.raises(DwrError, match=needle):
        resolve_recipe(recipe, None, overrides)


def test_bad_key_in_yaml_names_file(tmp_path):
    f = tmp_path / "r.yml"
    f.write_text("epochz: 3\n")
    with pytest.raises(DwrError, match=r"unknown recipe key 'epochz' in recipe file .*r.yml"):
        resolve_recipe(str(f))


def test_lr_schedules():
    cos = LrFactor("cosine", total=100, warmup=0)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0)
    lin = LrFactor("linear", total=100, warmup=10)
    assert lin(0) == pytest.approx(0.1) and lin(9) == 1.0 and lin(55) == pytest.approx(0.5)
    assert math.isclose(LrFactor("constant", 10, 0)(7), 1.0)


def test_weight_decay_only_on_weights():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    g = param_groups(m, 1e-4)
    assert [p.dim() for p in g[0]["params"]] == [4] and g[0]["weight_decay"] == 1e-4
    assert len(g[1]["params"]) == 3 and g[1]["weight_decay"] == 0.0
