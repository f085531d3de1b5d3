"""VGG family on CIFAR: VGG-Small (IR-Net/LQ-Net) and VGG-11.

A stage is a run of binary 3x3 convs of one width; stride 2 means a 2x2 max-pool after it.
The first conv (the stem) stays real-valued. ``vgg_small_cifar_dwr`` uses the DWR authors'
channels [106, 252, 256, 512, 512] with the original pooling positions. The authors publish no
VGG-11 widths, so ``vgg11_cifar_dwr`` is VGG-11 naively reshaped with factor 2.
"""

from __future__ import annotations

from dwr.backbones.registry import register_model
from dwr.backbones.spec import BackboneSpec
from dwr.backbones.units import Pool, Stage, Unit, register_family


@register_family("vgg", "binary 3x3 units without shortcuts; a stride-2 stage ends in a max-pool")
def vgg_units(spec: BackboneSpec, in_channels: int) -> list[Stage]:
    stages: list[Stage] = []
    for depth, width, stride in zip(spec.depths, spec.widths, spec.strides, strict=True):
        stage: Stage = []
        for _ in range(depth):
            stage.append(Unit(in_channels, width, 3, 1, "none"))
            in_channels = width
        if stride == 2:
            stage.append(Pool())
        stages.append(stage)
    return stages


def _vgg(name: str, depths, widths, strides, stem_width: int, stem: str = "cifar"):
    return BackboneSpec(
        family="vgg",
        depths=depths,
        widths=widths,
        strides=strides,
        stem_width=stem_width,
        stem=stem,
        method="irnet",
        num_classes=10,
        name=name,
    )


@register_model
def vgg_small_cifar() -> BackboneSpec:
    # conv0 (real) 128 | 128 pool | 256 256 pool | 512 512 pool
    return _vgg("vgg_small_cifar", (1, 2, 2), (128, 256, 512), (2, 2, 2), 128)


@register_model
def vgg_small_cifar_dwr() -> BackboneSpec:
    return _vgg(
        "vgg_small_cifar_dwr", (1, 1, 1, 1, 1), (106, 252, 256, 512, 512), (2, 1, 2, 1, 2), 128
    )


@register_model
def vgg11_cifar() -> BackboneSpec:
    # conv0 (real) 64 pool | 128 pool | 256 256 pool | 512 512 pool | 512 512 pool
    return _vgg("vgg11_cifar", (1, 2, 2, 2), (128, 256, 512, 512), (2, 2, 2, 2), 64, "cifar_pool")


@register_model
def vgg11_cifar_dwr() -> BackboneSpec:
    return _vgg(
        "vgg11_cifar_dwr", (1, 1, 1, 1), (181, 362, 724, 724), (2, 2, 2, 2), 64, "cifar_pool"
    )
