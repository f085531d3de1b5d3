"""The unit list: a spec's network, unit by unit, as plain data made once per family.

Every backbone is ``stem -> stages -> head``, and a stage is a list of units: a binary
convolution with its own shortcut (:class:`Unit`), or a 2x2 max-pool (:class:`Pool`). A family
is one file under :mod:`dwr.backbones.families` that registers its spec builders
(:func:`~dwr.backbones.registry.register_model`) and its unit list
(:func:`register_family`); the files there are found and imported on first use, so adding
one edits no central list. The model builder, output sizes, size limits and the lowering
(:mod:`dwr.lowering`, which the engine, the exporter and the latency model read) read the
list instead of re-deriving structure from a family name.

Shortcut kinds (what ``x`` adds to a unit's ``BN(conv(x))``):
``none``; ``identity``; ``conv`` (real 1x1, stride s, + BN); ``avgpool_conv`` (s x s average
pool, then real 1x1 + BN); ``zero_pad`` (subsample, zero channels: ResNet-20 option A);
``avgpool`` (s x s average pool alone, ReActNet-A); ``tile`` (``cat([x, x, ...])[:, :out]``,
ReActNet-A's doubling 1x1 convs). Pool and tile are parameter-free, like zero-pad.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dwr.errors import DwrError

if TYPE_CHECKING:
    from dwr.backbones.spec import BackboneSpec

SHORTCUT_KINDS = ("none", "identity", "conv", "avgpool_conv", "zero_pad", "avgpool", "tile")


@dataclass(frozen=True)
class Unit:
    """One binary convolution ``act(BN(conv(shift(x))) + shortcut(x))``, padding ``k // 2``."""

    in_channels: int
    out_channels: int
    kernel: int = 3
    stride: int = 1
    shortcut: str = "none"

    def __post_init__(self) -> None:
        if self.shortcut not in SHORTCUT_KINDS:
            raise DwrError(f"unknown shortcut {self.shortcut!r}; choose one of {SHORTCUT_KINDS}")

    @property
    def padding(self) -> int:
        return self.kernel // 2

    def out_size(self, size: int) -> int:
        return (size + 2 * self.padding - self.kernel) // self.stride + 1


@dataclass(frozen=True)
class Pool:
    """A 2x2, stride-2 max-pool between units (floor)."""

    def out_size(self, size: int) -> int:
        return size // 2


Stage = list["Unit | Pool"]
UnitsFn = Callable[["BackboneSpec", int], list[Stage]]


def shortcut_for(in_channels: int, out_channels: int, stride: int, kind: str) -> str:
    """``identity`` where shapes match, else the family's downsampling ``kind``."""
    return "identity" if stride == 1 and in_channels == out_channels else kind


@dataclass(frozen=True)
class Family:
    """A registered family: its name, unit list and a one-line description."""

    name: str
    units: UnitsFn
    about: str


_FAMILIES: dict[str, Family] = {}


def register_family(name: str, about: str) -> Callable[[UnitsFn], UnitsFn]:
    """Decorator: register ``fn(spec, in_channels) -> stages`` as family ``name``'s unit list
    (``in_channels``: what the stem hands stage 0)."""

    def add(fn: UnitsFn) -> UnitsFn:
        _FAMILIES[name] = Family(name, fn, about)
        return fn

    return add


_loaded = False


def load_families() -> None:
    """Import every module of :mod:`dwr.backbones.families` once (their decorators register);
    every spec validation asks, so later calls return at once."""
    global _loaded
    if _loaded:
        return
    from dwr.backbones import families

    for info in pkgutil.iter_modules(families.__path__):
        importlib.import_module(f"{families.__name__}.{info.name}")
    _loaded = True


def family_names() -> tuple[str, ...]:
    load_families()
    return tuple(sorted(_FAMILIES))


def get_family(name: str) -> Family:
    load_families()
    if name not in _FAMILIES:
        raise DwrError(f"unknown family {name!r}; choose one of {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def stage_units(spec: BackboneSpec) -> list[Stage]:
    """The spec's stages as unit lists (the stem adapter, if any, hands stage 0 its width)."""
    in_channels = spec.widths[0] if spec.stem_adapter else spec.stem_width
    return get_family(spec.family).units(spec, in_channels)


def units(spec: BackboneSpec) -> list[Unit]:
    """Every binary unit of the spec, in order."""
    return [u for stage in stage_units(spec) for u in stage if isinstance(u, Unit)]
