import pytest
import torch

from dwr.binary import BinaryConv2d, BinaryLinear, RPReLU, RSign, get_binarizer
from dwr.binary.binarizers import approx_sign, scaled_sign, sign, ste_sign
from dwr.errors import DwrError

X = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5])


def _grad(fn, x):
    x = x.clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


def test_sign_has_no_zeros():
    assert sign(X).tolist() == [-1, -1, -1, 1, 1, 1, 1]


def test_ste_sign_forward_and_clipped_gradient():
    assert torch.equal(ste_sign(X), sign(X))
    assert _grad(ste_sign, X).tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_approx_sign_gradient_is_bireal_polynomial():
    expected = (2 - 2 * X.abs()).clamp_min(0)
    assert torch.allclose(_grad(approx_sign, X), expected)
    assert _grad(approx_sign, X)[3] == 2.0  # peak at 0


def test_scaled_sign_is_mean_abs_times_sign_per_output_channel():
    w = torch.randn(4, 3, 3, 3) * 0.5
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(scaled_sign(w), alpha * sign(w))
    g = _grad(scaled_sign, w)
    assert torch.allclose(g, alpha.expand_as(w) * (w.abs() <= 1).float())


def test_registry_by_name_and_errors():
    assert get_binarizer("approx_sign") is approx_sign
    assert get_binarizer(None) is None
    with pytest.raises(DwrError, match="unknown binarizer 'nope'"):
        get_binarizer("nope")


def test_binary_conv_equals_conv_of_signs_with_zero_padding():
    conv = BinaryConv2d(3, 5, 3, 1, 1, input_binarizer="ste_sign", weight_binarizer="ste_sign")
    x = torch.randn(2, 3, 6, 6)
    ref = torch.nn.functional.conv2d(sign(x), sign(conv.weight), padding=1)
    out = conv(x)
    assert torch.equal(out, ref)
    # a corner output sees only 4 of 9 taps: padding contributes 0, not +-1
    assert out[0, 0, 0, 0].abs() <= 3 * 4


def test_binary_conv_float_when_binarizers_none():
    conv = BinaryConv2d(3, 4, 3, 1, 1, input_binarizer=None, weight_binarizer=None)
    x = torch.randn(1, 3, 5, 5)
    assert not conv.is_binary
    assert torch.allclose(conv(x), torch.nn.functional.conv2d(x, conv.weight, padding=1))


def test_binary_linear():
    lin = BinaryLinear(6, 2, input_binarizer="ste_sign", weight_binarizer="ste_sign")
    x = torch.randn(3, 6)
    assert torch.allclose(lin(x), sign(x) @ sign(lin.weight).T + lin.bias)


def test_rsign_and_rprelu_learn_shifts():
    rs, rp = RSign(3), RPReLU(3)
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        rs.shift.bias.fill_(0.5)
    assert torch.allclose(rs(x), x + 0.5)
    y = rp(x)
    assert torch.allclose(y, torch.where(x >= 0, x, 0.25 * x))
    y.sum().backward()
    assert rp.shift_in.bias.grad is not None and rp.prelu.weight.grad is not None


# -- properties: what cost and the engine read instead of names --------------------------------
def test_registered_binarizers_declare_their_properties():
    from dwr.binary import binarizer_properties

    for fn in (ste_sign, approx_sign):
        props = binarizer_properties(fn)
        assert (props.precision, props.forward, props.scale) == (1, "sign", "none")
        assert props.is_sign
    assert binarizer_properties(scaled_sign).scale == "mean_abs_per_output"
    assert binarizer_properties(lambda x: x) is None


def test_user_binarizer_properties_by_registration_or_attribute():
    from dwr.binary import BinarizerProperties, binarizer_properties, register_binarizer
    from dwr.binary.binarizers import _REGISTRY

    def two_bit(x):
        return x.clamp(-1, 1)

    def my_sign(x):
        return sign(x)

    my_sign.binarizer_properties = BinarizerProperties(gradient="none")
    try:
        register_binarizer("two_bit_test", two_bit, BinarizerProperties(precision=2))
        assert binarizer_properties(two_bit).precision == 2
        assert not binarizer_properties(two_bit).is_sign
        assert binarizer_properties(my_sign).is_sign
        # a 2-bit input makes the conv real-valued for cost; a declared 1-bit sign keeps it binary
        assert not BinaryConv2d(4, 4, 3, input_binarizer="two_bit_test").is_binary
        assert BinaryConv2d(4, 4, 3, input_binarizer=my_sign).is_binary
    finally:
        _REGISTRY.pop("two_bit_test", None)


def test_properties_are_validated():
    from dwr.binary import BinarizerProperties

    for bad in ({"precision": 0}, {"forward": "tanh"}, {"scale": "max"}):
        with pytest.raises(DwrError):
            BinarizerProperties(**bad)
