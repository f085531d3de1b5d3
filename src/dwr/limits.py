"""Upper bounds on sizes, and a memory estimate made before anything is allocated.

Absurd input (a depth of 10^6, a billion classes, a 10^6-pixel side, a factor near zero) must
fail at once with a message, not build a network for minutes or fail deep inside an
allocator. The bounds are far above any real network (ResNet-1202 has 200 blocks per stage;
ImageNet-21k has 21,841 classes), so they only ever stop typos and runaway arithmetic.

The memory estimate of a spec at an input size and batch (float32) is

    bytes ~ 4 * (params + batch * (C*H*W + 3 * peak))

where ``peak`` is the largest feature map of one image (a forward pass holds the input of a
layer, its output and a shortcut at once); ``params`` counts every binary conv, the stem, the
shortcut convs and the classifier. Both are read from the spec's unit list
(:mod:`dwr.backbones.units`), so every family is estimated by its own structure.
"""

from __future__ import annotations

import os
from typing import Any

from dwr.errors import DwrError

#: Blocks per stage.
MAX_DEPTH = 256
#: Classifier outputs.
MAX_CLASSES = 100_000
#: Input channels.
MAX_IN_CHANNELS = 1024
#: Weights of one network (8 GiB as float32).
MAX_PARAMS = 2**31
#: Side of an input image in pixels.
MAX_INPUT_SIDE = 8192
#: Images per batch.
MAX_BATCH = 65536
#: Threads per process.
MAX_THREADS = 256
#: DataLoader worker processes.
MAX_WORKERS = 128
#: Epochs of one training.
MAX_EPOCHS = 100_000
#: ``--eps-scale``: ``"global"``, one eps (a cosine distance) for every stage, the authors';
#: ``"stage"``, each stage's eps in units of its own k-distance (:mod:`dwr.reshape.cluster`).
EPS_SCALES = ("global", "stage")
#: Largest fixed eps per scale.
EPS_LIMITS = {"global": 2.0, "stage": 1000.0}


def check_eps(eps: float | None, eps_scale: str = "global") -> None:
    """Raise :class:`DwrError` for an unknown eps scale or a fixed eps outside its range."""
    if eps_scale not in EPS_SCALES:
        raise DwrError(f"eps scale must be one of {', '.join(EPS_SCALES)}, got {eps_scale!r}")
    top = EPS_LIMITS[eps_scale]
    if eps is not None and not 0 < eps <= top:
        unit = "a cosine distance" if eps_scale == "global" else "times each stage's k-distance"
        raise DwrError(f"eps must be in (0, {top:g}] ({unit}), got {eps}")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _stem_sides(spec: Any, height: int, width: int) -> tuple[list[int], list[int]]:
    """The stem conv's output sides, and the stem's (after its pool, if any)."""
    from dwr.backbones.spec import STEM_GEOMETRY

    g = STEM_GEOMETRY[spec.stem]
    return [g.conv_side(s) for s in (height, width)], [g.side(s) for s in (height, width)]


def _unit_maps(spec: Any, height: int, width: int) -> list[int]:
    """Elements of each binary unit's output for one image, in order (the unit list)."""
    from dwr.backbones.units import Unit, stage_units

    _, sides = _stem_sides(spec, height, width)
    maps = []
    for stage in stage_units(spec):
        for unit in stage:
            sides = [unit.out_size(side) for side in sides]
            if isinstance(unit, Unit):
                maps.append(unit.out_channels * sides[0] * sides[1])
    return maps


def approx_params(spec: Any) -> int:
    """Weights of the network ``spec`` builds, read from its unit list: every binary conv and
    real 1x1 shortcut, the stem (and its adapter) and the classifier (BN's are left out)."""
    from dwr.backbones.spec import STEM_GEOMETRY
    from dwr.backbones.units import units

    k = STEM_GEOMETRY[spec.stem].k
    total = spec.in_channels * spec.stem_width * k * k
    last = spec.stem_width
    if spec.stem_adapter:  # a depthwise 1x1 conv, and PReLU's slopes
        total += spec.stem_width + spec.widths[0]
        last = spec.widths[0]
    for unit in units(spec):
        total += unit.kernel**2 * unit.in_channels * unit.out_channels
        if unit.shortcut in ("conv", "avgpool_conv"):
            total += unit.in_channels * unit.out_channels
        last = unit.out_channels
    return total + last * spec.num_classes + spec.num_classes


def peak_activation(spec: Any, height: int, width: int) -> int:
    """Elements of the largest feature map of one image: the stem conv's output or a unit's."""
    conv, sides = _stem_sides(spec, height, width)
    stem = spec.stem_width * conv[0] * conv[1]
    adapter = spec.widths[0] * sides[0] * sides[1] if spec.stem_adapter else 0
    return max([stem, adapter, *_unit_maps(spec, height, width)])


def total_activation(spec: Any, height: int, width: int) -> int:
    """Elements of the stem's and every binary unit's output for one image (what backward
    keeps)."""
    _, sides = _stem_sides(spec, height, width)
    stem = (spec.widths[0] if spec.stem_adapter else spec.stem_width) * sides[0] * sides[1]
    return stem + sum(_unit_maps(spec, height, width))


def estimate_bytes(
    spec: Any, input_size: tuple[int, int, int], batch: int = 1, training: bool = False
) -> int:
    """Float32 bytes of the weights plus one forward pass of ``batch`` images (see above).

    Training keeps every layer's activations for backward (about 4 tensors per binary conv:
    its input's sign, the conv output, BN and the shortcut sum) and 4 copies of the weights
    (weights, gradients, two optimizer moments)."""
    c, h, w = input_size
    if training:
        per_image = c * h * w + 4 * total_activation(spec, h, w)
        return 4 * (4 * approx_params(spec) + batch * per_image)
    return 4 * (approx_params(spec) + batch * (c * h * w + 3 * peak_activation(spec, h, w)))


def physical_memory() -> int | None:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_input_size(input_size: tuple[int, ...], what: str = "input size") -> None:
    """Channels in [1, MAX_IN_CHANNELS], sides in [1, MAX_INPUT_SIDE]."""
    c, h, w = input_size
    if not 1 <= c <= MAX_IN_CHANNELS:
        raise DwrError(f"{what}: channels must be in [1, {MAX_IN_CHANNELS}], got {c}")
    if not (1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        raise DwrError(f"{what}: height and width must be in [1, {MAX_INPUT_SIDE}], got {h}x{w}")


def check_memory(
    spec: Any, input_size: tuple[int, int, int], batch: int = 1, training: bool = False
) -> int:
    """Refuse a network/input/batch whose estimate exceeds 80% of this machine's RAM;
    returns the estimate in bytes."""
    check_input_size(input_size)
    need = estimate_bytes(spec, input_size, batch, training)
    have = physical_memory()
    if have is not None and need > 0.8 * have:
        c, h, w = input_size
        raise DwrError(
            f"{'training ' if training else ''}{spec.name or spec.family} at input "
            f"{c}x{h}x{w}, batch {batch} needs about "
            f"{_gib(need)} of memory but this machine has {_gib(have)}; use a smaller "
            "input, batch or network"
        )
    return need


def check_spec_size(spec: Any, label: str) -> None:
    """Spec-level bounds: depths, classes, channels and the number of weights."""
    if max(spec.depths) > MAX_DEPTH:
        raise DwrError(
            f"{label}: depth {max(spec.depths)} exceeds {MAX_DEPTH} blocks per stage "
            "(is the reshaping factor too small?)"
        )
    if spec.num_classes > MAX_CLASSES:
        raise DwrError(f"{label}: num_classes {spec.num_classes} exceeds {MAX_CLASSES}")
    if spec.in_channels > MAX_IN_CHANNELS:
        raise DwrError(f"{label}: in_channels {spec.in_channels} exceeds {MAX_IN_CHANNELS}")
    params = approx_params(spec)
    if params > MAX_PARAMS:
        raise DwrError(
            f"{label}: about {params / 1e9:.1f}G weights ({_gib(4 * params)} as float32), "
            f"more than the limit of {MAX_PARAMS / 1e9:.1f}G; use smaller depths or widths"
        )
