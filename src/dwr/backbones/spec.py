"""The backbone spec: the one source of truth for an architecture.

A spec is plain data (a frozen dataclass) that serialises to JSON. Models, cost, checkpoints,
reshaping, pruning and the engine all read it; reshaping and pruning return new specs.

Per stage ``i`` a backbone has ``depths[i]`` blocks of width ``widths[i]``; the first block
applies ``strides[i]``.
- ``family="resnet"``: a block is ``block_convs`` binary 3x3 units, each with its own shortcut.
  CIFAR ResNets (IR-Net/DWR) use 2 per block, so ResNet-18 is depths (2, 2, 2, 2); Bi-Real and
  ReActNet count every binary conv as a block, so their ResNet-18 is depths (4, 4, 4, 4).
- ``family="vgg"``: a block is one binary 3x3 conv unit; a stage with stride 2 ends with a
  2x2 max-pool (the VGG "stage" is a run of convs between poolings).
- ``family="mobilenet"`` (ReActNet-A): a block is a binary 3x3 unit and a binary 1x1 unit.

Each family's file (:mod:`dwr.backbones.families`) turns a spec into its unit list
(:mod:`dwr.backbones.units`); the model builder and :meth:`BackboneSpec.output_size` read it.

``stem_adapter`` (the DWR authors' ``Convalg``, ImageNet DWR models): the stem's
``stem_width`` channels are widened to ``widths[0]`` by a cheap real-valued step,
``PReLU(cat(BN(dwconv1x1(x)), x, x, ...)[:, :widths[0]])``, so stage 0 starts with a
width-to-width binary conv (the authors' widths need one copy of ``x``; a wider reshaped
stage 0 takes more).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any

from dwr.errors import DwrError
from dwr.limits import check_spec_size


@dataclass(frozen=True)
class StemGeometry:
    """A stem kind's real-valued conv (``k`` x ``k``, ``stride``, ``pad``), its max-pool
    (``(kernel, stride, padding)``, or ``None``) and whether an activation follows the BN.
    Written once: the model, the lowering, the latency model and the size limits read it."""

    k: int
    stride: int
    pad: int
    pool: tuple[int, int, int] | None
    act: bool = True

    def conv_side(self, side: int) -> int:
        return (side + 2 * self.pad - self.k) // self.stride + 1

    def side(self, side: int) -> int:
        """The stem's output side (after its pool) for an input side ``side``."""
        side = self.conv_side(side)
        if self.pool is None:
            return side
        k, s, p = self.pool
        return (side + 2 * p - k) // s + 1


#: ``cifar`` 3x3/1; ``cifar_pool`` 3x3/1 + 2x2 max-pool; ``imagenet`` 7x7/2 + 3x3/2 max-pool
#: (padding 1); ``mobilenet`` (ReActNet-A) 3x3/2 with no activation or pool.
STEM_GEOMETRY = {
    "cifar": StemGeometry(3, 1, 1, None),
    "cifar_pool": StemGeometry(3, 1, 1, (2, 2, 0)),
    "imagenet": StemGeometry(7, 2, 3, (3, 2, 1)),
    "mobilenet": StemGeometry(3, 2, 1, None, act=False),
}
STEMS = tuple(STEM_GEOMETRY)


def stem_side(stem: str, side: int) -> int:
    """The side of a ``stem``'s output for an input side ``side``."""
    return STEM_GEOMETRY[stem].side(side)


SHORTCUTS = ("conv", "zero_pad", "avgpool_conv")
METHODS = ("irnet", "bireal", "reactnet", "bnn")
#: Widths beyond this are a typo or an absurd reshaping factor, not a network.
MAX_WIDTH = 16384


def _ints(values: Any, what: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError, OverflowError):  # OverflowError: inf
        raise DwrError(f"{what} must be a list of integers, got {values!r}") from None
    if any(float(v) != int(v) for v in values):
        raise DwrError(f"{what} must be whole numbers, got {list(values)}")
    return out


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to build, cost, train, prune and compile a backbone."""

    family: str
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    stem_width: int
    stem: str = "cifar"
    block_convs: int = 2
    shortcut: str = "conv"
    method: str = "irnet"
    binary: bool = True
    num_classes: int = 10
    in_channels: int = 3
    stem_adapter: bool = False
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for attr in ("depths", "widths", "strides"):
            object.__setattr__(self, attr, _ints(getattr(self, attr), attr))
        for attr in ("stem_width", "block_convs", "num_classes", "in_channels"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise DwrError(f"{attr} must be an integer, got {value!r}")
            object.__setattr__(self, attr, int(value))
        self.validate()

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`DwrError` naming the first problem with this spec."""
        label = self.name or self.family
        from dwr.backbones.units import family_names  # the families register themselves

        if self.family not in family_names():
            raise DwrError(f"unknown family {self.family!r}; choose one of {list(family_names())}")
        if self.stem not in STEMS:
            raise DwrError(f"unknown stem {self.stem!r}; choose one of {list(STEMS)}")
        if self.shortcut not in SHORTCUTS:
            raise DwrError(f"unknown shortcut {self.shortcut!r}; choose one of {list(SHORTCUTS)}")
        if self.method not in METHODS:
            raise DwrError(f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        n = len(self.strides)
        if n == 0:
            raise DwrError(f"{label}: a backbone needs at least one stage")
        for attr in ("depths", "widths"):
            got = getattr(self, attr)
            if len(got) != n:
                raise DwrError(
                    f"{label}: {attr} has {len(got)} values but the backbone has {n} stages "
                    f"(give {n} values, e.g. {attr} {' '.join(map(str, self._example(attr)))})"
                )
        if any(d < 1 for d in self.depths):
            raise DwrError(f"{label}: every depth must be >= 1, got depths {list(self.depths)}")
        if any(w < 1 for w in self.widths) or self.stem_width < 1:
            raise DwrError(f"{label}: every width must be >= 1, got widths {list(self.widths)}")
        if max(self.widths) > MAX_WIDTH:
            raise DwrError(
                f"{label}: width {max(self.widths)} exceeds {MAX_WIDTH}; "
                "that would not fit in memory (is the reshaping factor too large?)"
            )
        if any(s not in (1, 2) for s in self.strides):
            raise DwrError(f"{label}: strides must be 1 or 2, got {list(self.strides)}")
        if self.block_convs not in (1, 2):
            raise DwrError(f"{label}: block_convs must be 1 or 2, got {self.block_convs}")
        if self.num_classes < 1 or self.in_channels < 1:
            raise DwrError(f"{label}: num_classes and in_channels must be >= 1")
        check_spec_size(self, label)  # upper bounds: depth, classes, channels, weights

    def _example(self, attr: str) -> tuple[int, ...]:
        return (1,) * len(self.strides) if attr == "depths" else (64,) * len(self.strides)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size after the last stage (stem, then the unit list); raises if the input is
        too small for the strides."""
        from dwr.backbones.units import stage_units

        if min(height, width) < 1:
            raise DwrError(f"input size must be positive, got {height}x{width}")
        size = [stem_side(self.stem, h) for h in (height, width)]
        for stage in stage_units(self):
            for unit in stage:
                size = [unit.out_size(h) for h in size]
            if min(size) < 1:
                raise DwrError(
                    f"input {height}x{width} is too small for {self.name or self.family}: "
                    f"its stem and strides {list(self.strides)} shrink it below 1 pixel"
                )
        return size[0], size[1]

    @property
    def input_size(self) -> tuple[int, int, int]:
        """Default input (C, H, W): 224x224 for an ImageNet or MobileNet stem, else 32x32."""
        side = 224 if self.stem in ("imagenet", "mobilenet") else 32
        return (self.in_channels, side, side)

    # -- transforms -----------------------------------------------------------------------
    def replace(self, **changes: Any) -> BackboneSpec:
        """A new, validated spec with some fields changed."""
        return dataclasses.replace(self, **changes)

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("depths", "widths", "strides"):
            d[key] = list(d[key])
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSpec:
        if not isinstance(data, dict):
            raise DwrError(f"a backbone spec must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DwrError(f"unknown backbone spec keys {unknown}; valid keys are {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise DwrError(f"incomplete backbone spec: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> BackboneSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DwrError(f"backbone spec is not valid JSON: {exc}") from None
