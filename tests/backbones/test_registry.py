import pytest
import torch

import dwr
from dwr.backbones import Backbone, BackboneSpec
from dwr.binary import BinaryConv2d
from dwr.errors import DwrError

REQUIRED = {
    "resnet18_cifar",
    "resnet20_cifar",
    "vgg_small_cifar",
    "vgg11_cifar",
    "birealnet18",
    "birealnet34",
    "reactnet18",
    "resnet18_cifar_dwr",
    "resnet20_cifar_dwr",
    "vgg_small_cifar_dwr",
    "vgg11_cifar_dwr",
    "birealnet18_dwr",
    "reactnet18_dwr",
}


def test_registry_has_required_names():
    assert REQUIRED <= set(dwr.list_models())


@pytest.mark.parametrize("name", dwr.list_models())
def test_every_model_runs_forward_and_backward(name):
    spec = dwr.get_spec(name)
    size = 64 if spec.stem == "imagenet" else 32  # small input keeps the test fast
    model = dwr.create_model(name, num_classes=7)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    convs = [m for m in model.modules() if isinstance(m, BinaryConv2d)]
    assert convs and all(m.is_binary for m in convs)
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs)


@pytest.mark.parametrize(
    "name,depths,widths",
    [
        ("resnet18_cifar_dwr", [1, 1, 1, 1], [120, 222, 290, 458]),
        ("resnet20_cifar_dwr", [1, 1, 1], [16, 78, 134]),
        ("vgg_small_cifar_dwr", [1, 1, 1, 1, 1], [106, 252, 256, 512, 512]),
        ("birealnet18_dwr", [2, 2, 2, 2], [96, 168, 378, 866]),
        ("reactnet18_dwr", [2, 2, 2, 2], [116, 188, 408, 910]),
    ],
)
def test_authors_dwr_specs(name, depths, widths):
    spec = dwr.get_spec(name)
    assert list(spec.depths) == depths and list(spec.widths) == widths


def test_shrinking_widths_build_for_every_shortcut():
    for name in ("resnet20_cifar", "resnet18_cifar", "vgg_small_cifar", "reactnet18"):
        spec = dwr.get_spec(name)
        n = len(spec.widths)
        widths = list(range(8 * n, 0, -8))
        size = 64 if spec.stem == "imagenet" else 32
        model = dwr.create_model(name, depths=[1] * n, widths=widths)
        assert model(torch.randn(1, 3, size, size)).shape[1] == spec.num_classes


def test_float_twin_has_no_binarizers():
    model = dwr.create_model("resnet20_cifar", float=True)
    assert not model.spec.binary
    assert not any(m.is_binary for m in model.modules() if isinstance(m, BinaryConv2d))


def test_spec_json_roundtrip_rebuilds_same_architecture():
    spec = dwr.get_spec("reactnet18_dwr", num_classes=10)
    again = BackboneSpec.from_json(spec.to_json())
    assert again == spec
    assert isinstance(dwr.build(again), Backbone)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"depths": [1, 1]}, "depths has 2 values but the backbone has 3 stages"),
        ({"widths": [16, 0, 64]}, "every width must be >= 1"),
        ({"widths": [16, -3, 64]}, "every width must be >= 1"),
        ({"depths": [0, 1, 1]}, "every depth must be >= 1"),
        ({"widths": [16, 32, 10**6]}, "exceeds"),
    ],
)
def test_bad_specs_name_the_problem(overrides, message):
    with pytest.raises(DwrError, match=message):
        dwr.get_spec("resnet20_cifar", **overrides)


def test_unknown_model_lists_choices():
    with pytest.raises(DwrError, match="unknown model 'resnet19'.*resnet18_cifar"):
        dwr.create_model("resnet19")


def test_input_too_small_for_strides():
    with pytest.raises(DwrError, match="too small"):
        dwr.get_spec("vgg11_cifar").output_size(8, 8)
    assert dwr.get_spec("vgg11_cifar").output_size(32, 32) == (1, 1)


def test_spec_from_dict_rejects_unknown_keys():
    d = dwr.get_spec("resnet20_cifar").to_dict()
    d["colour"] = "red"
    with pytest.raises(DwrError, match="unknown backbone spec keys"):
        BackboneSpec.from_dict(d)
