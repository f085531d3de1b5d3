"""Binarizers (functions with custom gradients) and the binary layers that use them."""

from dwr.binary.binarizers import (
    INPUT_BINARIZERS,
    WEIGHT_BINARIZERS,
    BinarizerProperties,
    approx_sign,
    binarizer_name,
    binarizer_properties,
    get_binarizer,
    register_binarizer,
    scaled_sign,
    sign,
    ste_sign,
)
from dwr.binary.layers import BinaryConv2d, BinaryLinear, LearnableBias, RPReLU, RSign

__all__ = [
    "INPUT_BINARIZERS",
    "WEIGHT_BINARIZERS",
    "BinarizerProperties",
    "BinaryConv2d",
    "BinaryLinear",
    "LearnableBias",
    "RPReLU",
    "RSign",
    "approx_sign",
    "binarizer_name",
    "binarizer_properties",
    "get_binarizer",
    "register_binarizer",
    "scaled_sign",
    "sign",
    "ste_sign",
]
