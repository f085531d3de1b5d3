"""The lowered ops: a BNN as the list of steps every back end runs, shapes and flags included.

Plain data (NumPy arrays at most, no PyTorch, no kernels), so the latency model and the
engine's loader read it without importing either. Each op states its geometry and flags;
its weights (float64, batch norm folded) are attached when it was lowered from a model, and
are ``None`` when it was lowered from a spec alone.

- :class:`StemConv`: ``pool(act(conv(x) * a + b))``, the real-valued first layer, BN folded
  into ``w`` and ``b``.
- :class:`StemAdapter`: ``prelu(scale * x[..., src] + shift)`` (the DWR authors' adapter).
- :class:`BinaryConv`: ``act(scale * (sign(x + shift) (*) W) + bias + shortcut(x))`` with
  ``W`` = ``sign`` of the weights (±1), ``scale`` = the weight scale times BN's, ``bias`` BN's.
- :class:`MaxPool2`: a 2x2 stride-2 max-pool between units.
- :class:`Head`: global average pool and the linear classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from dwr.backbones.units import SHORTCUT_KINDS as SHORTCUTS
from dwr.errors import DwrError

#: Activations after a unit's (or the stem's) batch norm, as the kernels number them.
ACTIVATIONS = {"none": 0, "hardtanh": 1, "rprelu": 2}
#: Stem pools by name, and their ``(kernel, stride, padding)``.
STEM_POOLS = {"none": None, "max3": (3, 2, 1), "max2": (2, 2, 0)}


def conv_side(side: int, k: int, stride: int, pad: int) -> int:
    """The output side of a ``k`` x ``k`` convolution or pool (floor mode)."""
    return (side + 2 * pad - k) // stride + 1


def check_unit(
    where: str, c: int, o: int, k: int, stride: int, pad: int, shortcut: str, sc_stride: int
) -> None:
    """Raise :class:`DwrError` naming ``where`` when a unit's channels, geometry and shortcut
    do not fit together (the lowering and the engine's file loader both ask)."""

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise DwrError(f"{where}: {msg}")

    need(c >= 1 and o >= 1 and 1 <= k <= 7, "bad channels or kernel")
    need(stride >= 1 and 0 <= pad < k and sc_stride >= 1, "bad stride/padding")
    need(shortcut in SHORTCUTS, f"unknown shortcut {shortcut!r}")
    if shortcut == "identity":
        need(c == o and stride == 1, "identity shortcut changes shape")
    if shortcut == "avgpool":
        need(c == o and stride > 1, "avgpool shortcut needs c == o, stride")
    if shortcut == "tile":
        need(stride == 1, "tile shortcut needs stride 1")
    if shortcut != "none":
        # Every shortcut maps H to ceil(H / sc_stride); the conv gives
        # floor((H + 2 pad - k) / stride) + 1, equal for every H iff these hold.
        need(
            sc_stride == stride and 2 * pad + 1 == k,
            f"the {shortcut} shortcut (stride {sc_stride}) does not match the conv's output "
            f"(k {k}, stride {stride}, padding {pad})",
        )


@dataclass
class Op:
    """One lowered op: its name (the module path or graph node), channels and spatial sizes
    (``in_hw``, ``out_hw``; filled in by :func:`dwr.lowering.rules.infer_shapes`)."""

    kind: ClassVar[str] = ""
    name: str
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int] = (0, 0)
    out_hw: tuple[int, int] = (0, 0)

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        """The output size for an input of size ``hw``."""
        return hw

    @property
    def has_weights(self) -> bool:
        return False


@dataclass
class StemConv(Op):
    kind: ClassVar[str] = "stem"
    k: int = 3
    stride: int = 1
    pad: int = 1
    act: str = "none"
    pool: str = "none"  # a key of STEM_POOLS
    w: np.ndarray | None = None  # [O, C, k, k], BN folded
    b: np.ndarray | None = None  # [O]
    rprelu: tuple | None = None  # (shift in, slope, shift out) for act == "rprelu"
    precision: str = "f32"  # or opt-in "bf16"/"int8" (a compile choice the latency model prices)

    def conv_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        """The conv's output size (before the pool)."""
        return tuple(conv_side(v, self.k, self.stride, self.pad) for v in hw)  # type: ignore[return-value]

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        hw = self.conv_hw(hw)
        pool = STEM_POOLS[self.pool]
        return hw if pool is None else tuple(conv_side(v, *pool) for v in hw)  # type: ignore[return-value]

    @property
    def has_weights(self) -> bool:
        return self.w is not None


@dataclass
class StemAdapter(Op):
    kind: ClassVar[str] = "channel_adapter"
    src: np.ndarray | None = None  # [O] the input channel each output reads
    scale: np.ndarray | None = None  # [O]
    shift: np.ndarray | None = None  # [O]
    slope: np.ndarray | None = None  # [O] PReLU slope

    @property
    def has_weights(self) -> bool:
        return self.src is not None


@dataclass
class BinaryConv(Op):
    """One unit. ``output`` is ``"bits"`` when all the next op needs is the sign of this one's
    output (``rules.fold_signs``); ``packed_input`` and ``pack_next`` say where the input's
    signs are packed (``rules.mark_packing``). ``binary_input`` / ``binary_weight`` are false
    for a full-precision unit (a spec with ``binary=False``, or two-step training's first
    step), which the exporter writes and the engine refuses."""

    kind: ClassVar[str] = "binary_conv"
    k: int = 3
    stride: int = 1
    pad: int = 1
    shortcut: str = "none"
    sc_stride: int = 1
    shifted: bool = False  # an RSign threshold is added before the sign
    act: str = "none"
    output: str = "float"  # "float" or "bits"
    packed_input: bool = False
    pack_next: bool | str = False  # False, True, or "shift" when the next unit shifts first
    binary_input: bool = True
    binary_weight: bool = True
    weight: np.ndarray | None = None  # [O, C, k, k]: ±1 when binary_weight, else real
    scale: np.ndarray | None = None  # [O] weight scale x BN scale
    bias: np.ndarray | None = None  # [O]
    shift: np.ndarray | None = None  # [C] the RSign threshold
    rprelu: tuple | None = None
    sc_w: np.ndarray | None = None  # [O, C, 1, 1] of a conv shortcut, BN folded
    sc_b: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_unit(
            self.name,
            self.in_channels,
            self.out_channels,
            self.k,
            self.stride,
            self.pad,
            self.shortcut,
            self.sc_stride,
        )

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(conv_side(v, self.k, self.stride, self.pad) for v in hw)  # type: ignore[return-value]

    @property
    def has_weights(self) -> bool:
        return self.weight is not None


@dataclass
class MaxPool2(Op):
    kind: ClassVar[str] = "maxpool2"
    on_bits: bool = False  # an AND of the negative-bits of a unit with bit output

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return (hw[0] // 2, hw[1] // 2)


@dataclass
class Head(Op):
    kind: ClassVar[str] = "head"
    w: np.ndarray | None = None  # [classes, C]
    b: np.ndarray | None = None  # [classes]

    def output_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return (1, 1)

    @property
    def has_weights(self) -> bool:
        return self.w is not None
