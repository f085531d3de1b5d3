"""The engine reads binarizer properties, not names: a user's sign binarizer compiles exactly,
anything else is refused with a message naming it."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import random_model

from dwr.binary import BinarizerProperties, BinaryConv2d, register_binarizer, sign
from dwr.binary.binarizers import _REGISTRY
from dwr.engine import convert
from dwr.errors import DwrError
from sign_ties import assert_engine_matches


class _UserSign(torch.autograd.Function):
    """A user's own sign with an identity gradient, as other BNN code writes it."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return sign(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad


def user_sign(x: torch.Tensor) -> torch.Tensor:
    return _UserSign.apply(x)


def user_scaled_sign(w: torch.Tensor) -> torch.Tensor:
    return w.detach().abs().mean(dim=(1, 2, 3), keepdim=True) * _UserSign.apply(w)


def two_bit(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(-1, 1) * 1.5) / 1.5


@pytest.fixture
def user_binarizers():
    names = {
        "user_sign_test": (user_sign, BinarizerProperties(gradient="identity")),
        "user_scaled_test": (user_scaled_sign, BinarizerProperties(scale="mean_abs_per_output")),
        "two_bit_test": (two_bit, BinarizerProperties(precision=2)),
    }
    for name, (fn, props) in names.items():
        register_binarizer(name, fn, props)
    yield
    for name in names:
        _REGISTRY.pop(name, None)


def _swap(model, input_fn, weight_fn):
    for m in model.modules():
        if isinstance(m, BinaryConv2d) and m.is_binary:
            m.input_binarizer, m.weight_binarizer = input_fn, weight_fn
    return model


def test_user_sign_binarizers_compile_exactly(user_binarizers):
    model = _swap(random_model("resnet20_cifar"), user_sign, user_scaled_sign)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    # exact but for signs of values within rounding of 0, which any CPU may round either way
    assert_engine_matches(model, convert(model), x)


def test_unsupported_binarizer_is_refused_by_name(user_binarizers):
    model = _swap(random_model("resnet20_cifar"), two_bit, user_scaled_sign)
    with pytest.raises(DwrError, match="two_bit_test"):
        convert(model)
    undeclared = _swap(random_model("resnet20_cifar"), lambda x: sign(x), user_scaled_sign)
    with pytest.raises(DwrError, match="no declared properties"):
        convert(undeclared)
