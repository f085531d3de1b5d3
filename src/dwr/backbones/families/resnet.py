"""ResNet family: CIFAR ResNet-18/20 (IR-Net/DWR blocks), Bi-Real and ReActNet ResNet-18/34.

CIFAR depths count basic blocks of two binary 3x3 units; Bi-Real/ReActNet depths count single
binary units (each with its own shortcut), as in those papers' code. The ``*_dwr`` depths and
widths are those of the DWR authors' released code; the ImageNet ones also have its stem
adapter (``stem_adapter``: the stem's 64 channels widened cheaply to stage 0's width).
"""

from __future__ import annotations

from dwr.backbones.registry import register_model
from dwr.backbones.spec import BackboneSpec
from dwr.backbones.units import Stage, Unit, register_family, shortcut_for


@register_family(
    "resnet", "binary 3x3 units, each with its own shortcut; a block is block_convs units"
)
def resnet_units(spec: BackboneSpec, in_channels: int) -> list[Stage]:
    stages: list[Stage] = []
    for depth, width, stride in zip(spec.depths, spec.widths, spec.strides, strict=True):
        stage: Stage = []
        for b in range(depth * spec.block_convs):
            s = stride if b == 0 else 1
            stage.append(
                Unit(in_channels, width, 3, s, shortcut_for(in_channels, width, s, spec.shortcut))
            )
            in_channels = width
        stages.append(stage)
    return stages


def _cifar(name: str, depths, widths, shortcut: str = "conv", stem_width: int | None = None):
    return BackboneSpec(
        family="resnet",
        depths=depths,
        widths=widths,
        strides=(1,) + (2,) * (len(widths) - 1),
        stem_width=stem_width or widths[0],
        stem="cifar",
        shortcut=shortcut,
        method="irnet",
        num_classes=10,
        name=name,
    )


def _imagenet(name: str, depths, widths, method: str, adapter: bool = False) -> BackboneSpec:
    return BackboneSpec(
        family="resnet",
        depths=depths,
        widths=widths,
        strides=(1, 2, 2, 2),
        stem_width=64,
        stem="imagenet",
        shortcut="avgpool_conv",
        block_convs=1,
        method=method,
        num_classes=1000,
        stem_adapter=adapter,
        name=name,
    )


@register_model
def resnet18_cifar() -> BackboneSpec:
    return _cifar("resnet18_cifar", (2, 2, 2, 2), (64, 128, 256, 512))


@register_model
def resnet18_cifar_dwr() -> BackboneSpec:
    return _cifar("resnet18_cifar_dwr", (1, 1, 1, 1), (120, 222, 290, 458), stem_width=64)


@register_model
def resnet20_cifar() -> BackboneSpec:
    return _cifar("resnet20_cifar", (3, 3, 3), (16, 32, 64), shortcut="zero_pad")


@register_model
def resnet20_cifar_dwr() -> BackboneSpec:
    return _cifar("resnet20_cifar_dwr", (1, 1, 1), (16, 78, 134), "zero_pad", stem_width=16)


@register_model
def birealnet18() -> BackboneSpec:
    return _imagenet("birealnet18", (4, 4, 4, 4), (64, 128, 256, 512), "bireal")


@register_model
def birealnet18_dwr() -> BackboneSpec:
    return _imagenet("birealnet18_dwr", (2, 2, 2, 2), (96, 168, 378, 866), "bireal", adapter=True)


@register_model
def birealnet34() -> BackboneSpec:
    return _imagenet("birealnet34", (6, 8, 12, 6), (64, 128, 256, 512), "bireal")


@register_model
def reactnet18() -> BackboneSpec:
    return _imagenet("reactnet18", (4, 4, 4, 4), (64, 128, 256, 512), "reactnet")


@register_model
def reactnet18_dwr() -> BackboneSpec:
    return _imagenet("reactnet18_dwr", (2, 2, 2, 2), (116, 188, 408, 910), "reactnet", adapter=True)
