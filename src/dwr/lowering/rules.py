"""The rules that set a lowered op list's flags: shapes, sign folding, where signs are packed.

Written once here; the engine compiler, the exporter and the latency model read the flags
rather than re-deriving them.
"""

from __future__ import annotations

from dwr.lowering.ops import BinaryConv, MaxPool2, Op


def infer_shapes(ops: list[Op], hw: tuple[int, int]) -> None:
    """Fill in every op's ``in_hw`` and ``out_hw`` for a model input of size ``hw``."""
    for op in ops:
        op.in_hw, op.out_hw = hw, op.output_hw(hw)
        hw = op.out_hw


def sign_only_consumer(ops: list[Op], i: int) -> int | None:
    """The index of the unit that reads only the sign of unit ``i``'s output (through at most
    one 2x2 max-pool), or ``None``. Needs: no shortcut and a sign-preserving activation on
    ``i``, no RSign shift on the consumer (VGG's chain)."""
    op = ops[i]
    if not isinstance(op, BinaryConv) or op.shortcut != "none":
        return None
    if op.act not in ("none", "hardtanh"):
        return None
    j = i + 1 + (i + 1 < len(ops) and isinstance(ops[i + 1], MaxPool2))
    nxt = ops[j] if j < len(ops) else None
    if not isinstance(nxt, BinaryConv) or nxt.shifted or not nxt.binary_input:
        return None
    return j


def fold_signs(ops: list[Op]) -> None:
    """Let a unit emit sign bits when all its consumer needs is the next unit's sign (a
    threshold on the integer dot product), and a pool between them run on bits."""
    for i, op in enumerate(ops):
        if not isinstance(op, BinaryConv) or not (op.binary_input and op.binary_weight):
            continue
        j = sign_only_consumer(ops, i)
        if j is None:
            continue
        op.output = "bits"
        if j == i + 2:
            ops[i + 1].on_bits = True


def packs_next(op_kind: str, output: str, next_kind: str | None) -> bool:
    """Whether a unit packs the next unit's input signs in its own epilogue, while the values
    are in registers: a unit with float output directly followed by a unit. The engine's
    runtime applies the same rule to the ops it loads."""
    return op_kind == "binary_conv" and output == "float" and next_kind == "binary_conv"


def mark_packing(ops: list[Op]) -> None:
    """Set each unit's ``packed_input`` (its input signs arrive packed) and ``pack_next``."""
    packed = False
    for op, nxt in zip(ops, [*ops[1:], None], strict=True):
        if isinstance(op, BinaryConv):
            op.packed_input = packed
            feeds = packs_next(op.kind, op.output, nxt.kind if nxt else None)
            op.pack_next = "shift" if feeds and nxt.shifted else feeds
            packed = op.output == "bits" or feeds
        elif not isinstance(op, MaxPool2):
            packed = False


def finish(ops: list[Op], hw: tuple[int, int], fold: bool = True) -> list[Op]:
    """Shapes, then (with ``fold``) sign folding, then packing: what every lowering ends with."""
    infer_shapes(ops, hw)
    if fold:
        fold_signs(ops)
    mark_packing(ops)
    return ops
