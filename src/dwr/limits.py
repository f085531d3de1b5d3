"""Upper bounds on sizes, and a memory estimate made before anything is allocated.

Absurd input (a depth of 10^6, a billion classes, a 10^6-pixel side, a factor near zero) must
fail at once with a message, not build a network for minutes or fail deep inside an
allocator. The bounds are far above any real network (ResNet-1202 has 200 blocks per stage;
ImageNet-21k has 21,841 classes), so they only ever stop typos and runaway arithmetic.

The memory estimate of a spec at an input size and batch (float32) is

    bytes ~ 4 * (params + batch * (C*H*W + 3 * peak))

where ``peak`` is the largest feature map of one image (a forward pass holds the input of a
layer, its output and a shortcut at once); ``params`` counts every 3x3 conv, the stem, the
shortcut convs and the classifier.
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


def approx_params(spec: Any) -> int:
    """Weights of the network ``spec`` builds (3x3 convs, stem, shortcuts, classifier)."""
    k = 7 if spec.stem == "imagenet" else 3
    total = spec.in_channels * spec.stem_width * k * k
    prev = spec.stem_width
    per_block = spec.block_convs if spec.family == "resnet" else 1
    for depth, width, stride in zip(spec.depths, spec.widths, spec.strides, strict=True):
        convs = depth * per_block
        total += 9 * width * prev + (convs - 1) * 9 * width * width
        if spec.family == "resnet" and (stride != 1 or prev != width):
            total += prev * width  # 1x1 downsampling shortcut
        prev = width
    return total + prev * spec.num_classes + spec.num_classes


def peak_activation(spec: Any, height: int, width: int) -> int:
    """Elements of the largest feature map of one image."""
    h, w = height, width
    if spec.stem == "imagenet":
        h, w = (h + 1) // 2, (w + 1) // 2
    peak = spec.stem_width * h * w
    if spec.stem == "imagenet":
        h, w = (h + 1) // 2, (w + 1) // 2
    for depth_width, stride in zip(spec.widths, spec.strides, strict=True):
        peak = max(peak, depth_width * h * w)
        if stride == 2:
            h, w = (h + 1) // 2, (w + 1) // 2
        peak = max(peak, depth_width * h * w)
    return peak


def total_activation(spec: Any, height: int, width: int) -> int:
    """Elements of every binary conv's output for one image (what backward keeps)."""
    h, w = height, width
    if spec.stem == "imagenet":
        h, w = (h + 3) // 4, (w + 3) // 4
    total = spec.stem_width * h * w
    per_block = spec.block_convs if spec.family == "resnet" else 1
    for depth, width_, stride in zip(spec.depths, spec.widths, spec.strides, strict=True):
        if stride == 2:
            h, w = (h + 1) // 2, (w + 1) // 2
        total += depth * per_block * width_ * h * w
    return total


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
