"""Lower a spec: the op list its model compiles to, shapes and flags, without weights.

What the latency model prices, and the skeleton that :mod:`dwr.lowering.from_module` fills
with a model's weights. Reads the spec's stem geometry and unit list, nothing else.
"""

from __future__ import annotations

from dwr.backbones.spec import STEM_GEOMETRY, BackboneSpec
from dwr.errors import DwrError
from dwr.lowering.ops import BinaryConv, Head, MaxPool2, Op, StemAdapter, StemConv
from dwr.lowering.rules import finish

#: A spec method's activation as a lowered op's.
_ACTIVATIONS = {"hardtanh": "hardtanh", "rprelu": "rprelu", "identity": "none"}


def _stem(spec: BackboneSpec, act: str) -> StemConv:
    g = STEM_GEOMETRY[spec.stem]
    pool = {None: "none", (3, 2, 1): "max3", (2, 2, 0): "max2"}.get(g.pool)
    if pool is None:
        raise DwrError(f"the lowering does not know the stem pool {g.pool} of {spec.stem!r}")
    return StemConv(
        "stem",
        spec.in_channels,
        spec.stem_width,
        k=g.k,
        stride=g.stride,
        pad=g.pad,
        act=act if g.act else "none",
        pool=pool,
    )


def lower_spec(
    spec: BackboneSpec, input_size: tuple[int, int, int] | None = None, fold_signs: bool = True
) -> list[Op]:
    """The lowered ops of ``spec``'s model for an input of ``input_size`` (C, H, W; the spec's
    own by default): stem, stem adapter, the unit list's units and pools, head."""
    from dwr.backbones.methods import METHOD_TABLE
    from dwr.backbones.units import Pool, stage_units

    c, h, w = input_size or spec.input_size
    if c != spec.in_channels:
        raise DwrError(f"the model takes {spec.in_channels} input channels, not {c}")
    spec.output_size(h, w)  # a clear error when the input is too small
    method = METHOD_TABLE[spec.method]
    act = _ACTIVATIONS[method.activation]
    ops: list[Op] = [_stem(spec, act)]
    channels = spec.stem_width
    if spec.stem_adapter:
        ops.append(StemAdapter("stem.adapter", channels, spec.widths[0]))
        channels = spec.widths[0]
    for i, stage in enumerate(stage_units(spec)):
        for j, u in enumerate(stage):
            name = f"stages.{i}.{j}"
            if isinstance(u, Pool):
                ops.append(MaxPool2(name, channels, channels))
                continue
            # an average pool of stride 1 is the identity: that shortcut is one 1x1 conv
            shortcut = "conv" if u.shortcut == "avgpool_conv" and u.stride == 1 else u.shortcut
            ops.append(
                BinaryConv(
                    name,
                    u.in_channels,
                    u.out_channels,
                    k=u.kernel,
                    stride=u.stride,
                    pad=u.padding,
                    shortcut=shortcut,
                    sc_stride=u.stride if shortcut != "none" else 1,
                    shifted=method.rsign,
                    act=act,
                    binary_input=spec.binary,
                    binary_weight=spec.binary,
                )
            )
            channels = u.out_channels
    ops.append(Head("head", channels, spec.num_classes))
    return finish(ops, (h, w), fold_signs)
