"""Time the engine's op kinds over a grid of shapes: the calibration behind ``dwr.cost.latency``.

Every timing runs the engine's own ops (:mod:`dwr.engine.ops`) or kernels on random packed
weights (a popcount's time does not depend on the bits), batch 1, and keeps the minimum over
a few runs (the machine may be shared; the minimum is the steadier figure).

- ``binary_conv``: one :class:`BinaryConv` with a packed input, no shortcut, no activation,
  float output, by kernel, stride, input words ``ceil(C/64)``, output channels and output
  side. The rest of a unit's epilogue is timed as a cost *per element* on top of it
  (``fixed_ms + per_element_ns * elements``, fitted over a few shapes: the residual add,
  Hardtanh, RPReLU, packing the next conv's input, the bit output of VGG units, packing its own
  input, the zero-pad shortcut).
- ``float_conv``: the stem convolutions and the 1x1 shortcut convolutions.
- ``stem_bf16``, ``stem_int8``: the stem convolutions again with the opt-in bf16 and int8
  stems.
- ``head``: global average pool + classifier; pools and the stem adapter are fixed +
  per-element costs too.

A grid point with large weights (``COLD_BYTES``) starts each run with a core's L2 flushed: its
weights come from L3, as in a model, where the other ops run in between.

A grid point whose work exceeds the grid's cap is skipped (the model takes its throughput
from the nearest measured point: at that size the kernels run at their steady rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dwr.engine import _kernels, ops
from dwr.engine.ops import (
    BinaryConv,
    FloatConv,
    Head,
    MaxPool2,
    State,
    _float_conv,
    _float_conv_layout,
    _max_pool,
)
from dwr.engine.pack import ceil4, words
from dwr.errors import DwrError

#: Layout version of the table this module measures (``dwr.cost.latency`` reads it).
TABLE_FORMAT = 1


@dataclass(frozen=True)
class Grid:
    """The shapes to time. ``cap`` bounds a point's MACs (binary or float)."""

    bin_words: tuple[int, ...]
    bin_outs: tuple[int, ...]
    bin_sides: tuple[int, ...]
    bin_s2_words: tuple[int, ...]
    bin_s2_sides: tuple[int, ...]
    bin_k1_words: tuple[int, ...]
    bin_k1_outs: tuple[int, ...]
    bin_k1_sides: tuple[int, ...]
    fp_ins: tuple[int, ...]
    fp_outs: tuple[int, ...]
    fp_sides: tuple[int, ...]
    stem_outs: tuple[int, ...]
    stem_sides: tuple[int, ...]  # input sides
    head_ins: tuple[int, ...]
    head_classes: tuple[int, ...]
    head_sides: tuple[int, ...]
    extra_shapes: tuple[tuple[int, int], ...]  # (channels, side) for per-element costs
    bin_cap: float
    fp_cap: float
    target_s: float  # time spent per point (at least 3 runs)


GRIDS: dict[str, Grid] = {
    "full": Grid(
        bin_words=(1, 2, 4, 8, 16, 32),
        bin_outs=(16, 32, 64, 128, 256, 512, 1024, 2048),
        bin_sides=(1, 2, 4, 7, 14, 28, 56),
        bin_s2_words=(1, 2, 4, 8, 16),
        bin_s2_sides=(1, 2, 4, 7, 14, 28),
        bin_k1_words=(1, 2, 4, 8, 16),
        bin_k1_outs=(16, 64, 256, 1024),
        bin_k1_sides=(1, 4, 14, 56),
        fp_ins=(16, 64, 256, 1024),
        fp_outs=(16, 64, 256, 1024, 2048),
        fp_sides=(1, 2, 4, 7, 14, 28, 56),
        stem_outs=(8, 16, 32, 64, 128),
        stem_sides=(8, 32, 112, 224),
        head_ins=(16, 64, 256, 1024, 2048),
        head_classes=(10, 100, 1000),
        head_sides=(1, 4, 8),
        extra_shapes=((64, 56), (128, 28), (256, 14), (512, 7), (64, 16)),
        bin_cap=3e8,
        fp_cap=4e7,
        target_s=0.02,
    ),
    "quick": Grid(
        bin_words=(1, 2),
        bin_outs=(16, 64),
        bin_sides=(2, 8),
        bin_s2_words=(1,),
        bin_s2_sides=(4,),
        bin_k1_words=(1,),
        bin_k1_outs=(16,),
        bin_k1_sides=(4,),
        fp_ins=(16,),
        fp_outs=(16, 64),
        fp_sides=(4,),
        stem_outs=(16,),
        stem_sides=(8, 32),
        head_ins=(16,),
        head_classes=(10,),
        head_sides=(1, 4),
        extra_shapes=((64, 8),),
        bin_cap=1e8,
        fp_cap=1e7,
        target_s=0.002,
    ),
}

#: Stem geometries: (kernel, stride, padding, input channels).
STEMS = ((7, 2, 3, 3), (3, 1, 1, 3), (3, 1, 1, 1), (3, 2, 1, 3))


#: Written before each timed run of a grid point: 2 MiB pushes the op's weights out of a
#: core's L2, as the other ops of a model do between two runs of it (its L3 keeps them).
_FLUSH = np.zeros(2 << 20, np.uint8)


#: Weights this large are timed cold: in any model big enough to hold them, the other ops'
#: weights and activations evict them between two runs; smaller ops are timed warm (a small
#: model's whole working set stays in L2, and flushing would slow its tiny ops unfairly).
COLD_BYTES = 128 << 10


def _big(weights: np.ndarray) -> bool:
    return weights.nbytes >= COLD_BYTES


def _flush() -> None:
    np.add(_FLUSH, 1, out=_FLUSH)


def _best_ms(fn: Callable[[], Any], target_s: float, runs: int = 3, cold: bool = False) -> float:
    """Minimum wall time of ``fn()`` in ms: one warm-up, then at least ``runs`` runs and
    about ``target_s`` seconds in all (``cold``: :func:`_flush` before each, not timed)."""
    fn()
    best, spent, n = float("inf"), 0.0, 0
    while n < runs or (spent < target_s and n < 200):
        if cold:
            _flush()
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best * 1e3


def _rng_bits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.frombuffer(rng.bytes(8 * n), dtype=np.uint64).reshape(shape).copy()


def binary_op(c: int, o: int, k: int, stride: int, rng: np.random.Generator, **kw) -> BinaryConv:
    """A :class:`BinaryConv` with random packed weights (padding ``k // 2``)."""
    ones, zeros = np.ones(o, np.float32), np.zeros(o, np.float32)
    if kw.get("act") == "rprelu":
        kw["rprelu"] = (zeros, ones * 0.25, zeros)
    if kw.get("out") == "bits":
        kw.update(thr=np.zeros(o, np.int32), flip=np.zeros(o, np.uint8))
    if kw.get("shortcut") in ("conv", "avgpool_conv"):
        kw.update(sc_w=rng.standard_normal((o, c, 1, 1)).astype(np.float32), sc_b=zeros)
    return BinaryConv(
        "profile",
        in_channels=c,
        out_channels=o,
        k=k,
        stride=stride,
        pad=k // 2,
        wbits=_rng_bits(rng, (ceil4(o) // 4, k * k * words(c), 4)),
        wpop=np.zeros((o, k * k), np.int32),
        scale=ones,
        bias=zeros,
        **kw,
    )


def _input_state(c: int, side: int, rng: np.random.Generator, packed: bool = True) -> State:
    x = rng.standard_normal((1, side, side, c)).astype(np.float32)
    bits = _rng_bits(rng, (1, side, side, words(c))) if packed else None
    return State(x=x, bits=bits)


def _macs(*dims: int) -> float:
    return float(np.prod([float(d) for d in dims]))


# -- the grid's points ------------------------------------------------------------------------
def _binary_points(g: Grid) -> Iterator[dict[str, int]]:
    for k, s, ws, outs, sides in (
        (3, 1, g.bin_words, g.bin_outs, g.bin_sides),
        (3, 2, g.bin_s2_words, g.bin_outs, g.bin_s2_sides),
        (1, 1, g.bin_k1_words, g.bin_k1_outs, g.bin_k1_sides),
    ):
        for w in ws:
            for o in outs:
                for side in sides:
                    if _macs(side, side, o, 64 * w, k * k) <= g.bin_cap:
                        yield {"k": k, "stride": s, "words": w, "out": o, "oh": side}


def _float_points(g: Grid) -> Iterator[dict[str, int]]:
    for s in (1, 2):
        for c in g.fp_ins:
            for o in g.fp_outs:
                for side in g.fp_sides:
                    if _macs(side, side, o, c) <= g.fp_cap:
                        yield {"k": 1, "stride": s, "pad": 0, "cin": c, "out": o, "oh": side}
    yield from _stem_points(g)


def _stem_points(g: Grid) -> Iterator[dict[str, int]]:
    for k, s, p, c in STEMS:
        for o in g.stem_outs:
            for side in g.stem_sides:
                oh = (side + 2 * p - k) // s + 1
                if oh == 1 or _macs(oh, oh, o, c, k, k) <= g.fp_cap:
                    yield {"k": k, "stride": s, "pad": p, "cin": c, "out": o, "oh": oh, "ih": side}


def _head_points(g: Grid) -> Iterator[dict[str, int]]:
    for c in g.head_ins:
        for n in g.head_classes:
            for side in g.head_sides:
                yield {"cin": c, "classes": n, "h": side}


# -- timing each kind --------------------------------------------------------------------------
def time_binary(p: dict[str, int], rng: np.random.Generator, target_s: float) -> float:
    c, o, k, s = 64 * p["words"], p["out"], p["k"], p["stride"]
    op = binary_op(c, o, k, s, rng)
    st = _input_state(c, p["oh"] * s, rng)  # (h + 2 * (k // 2) - k) // s + 1 == oh
    return _best_ms(lambda: op.run(st), target_s, cold=_big(op.wbits))


def time_float(
    p: dict[str, int], rng: np.random.Generator, target_s: float, precision: str = "f32"
) -> float:
    c, o, k, s, pad = p["cin"], p["out"], p["k"], p["stride"], p["pad"]
    if "ih" in p:  # a stem: the FloatConv op on the model's NCHW input
        w = rng.standard_normal((o, c, k, k))
        stem = FloatConv("stem", w=w, b=np.zeros(o), stride=s, pad=pad, precision=precision)
        x = rng.standard_normal((1, c, p["ih"], p["ih"])).astype(np.float32)
        st = State(x=x, nchw=True)
        return _best_ms(lambda: stem.run(st), target_s)
    wk, bk = _float_conv_layout(rng.standard_normal((o, c, 1, 1)), np.zeros(o))
    side = p["oh"] * s
    x = rng.standard_normal((1, side, side, c)).astype(np.float32)
    none3 = (None, None, None)
    run = lambda: _float_conv(x, wk, bk, o, s, 0, "none", none3)  # noqa: E731
    return _best_ms(run, target_s, cold=_big(wk))


def time_stem_bf16(p: dict[str, int], rng: np.random.Generator, target_s: float) -> float:
    """A stem point with the opt-in bf16 stem (``FloatConv(precision="bf16")``)."""
    return time_float(p, rng, target_s, precision="bf16")


def time_stem_int8(p: dict[str, int], rng: np.random.Generator, target_s: float) -> float:
    """A stem point with the opt-in int8 stem (``FloatConv(precision="int8")``)."""
    return time_float(p, rng, target_s, precision="int8")


def time_head(p: dict[str, int], rng: np.random.Generator, target_s: float) -> float:
    c, n, h = p["cin"], p["classes"], p["h"]
    head = Head("head", w=rng.standard_normal((n, c)), b=np.zeros(n))
    st = State(x=rng.standard_normal((1, h, h, c)).astype(np.float32))
    return _best_ms(lambda: head.run(st), target_s, cold=_big(head.w))


#: The conv kinds timed again in later passes, and their timers.
CONV_TIMERS = (
    ("binary_conv", time_binary),
    ("float_conv", time_float),
    ("stem_bf16", time_stem_bf16),
    ("stem_int8", time_stem_int8),
)

Sample = tuple[int, float]  # (elements, ms)


def _delta(base: Callable, variant: Callable, elements: int, target_s: float) -> Sample:
    """``(elements, variant - base in ms)``, both timed in alternation (3 rounds, minimum)."""
    tb = tv = float("inf")
    for _ in range(3):
        tb = min(tb, _best_ms(base, target_s))
        tv = min(tv, _best_ms(variant, target_s))
    return elements, tv - tb


def fit_cost(samples: list[Sample]) -> tuple[float, float]:
    """``(fixed ms, ns per element)`` of ``ms = fixed + ns * elements * 1e-6``, least squares
    (through the origin when that gives a negative fixed cost, or with one sample)."""
    el = np.array([e for e, _ in samples], np.float64)
    ms = np.array([t for _, t in samples], np.float64)
    if len(set(el.tolist())) > 1:
        slope, fixed = np.polyfit(el, ms, 1)
        if fixed >= 0:
            return float(fixed), float(slope * 1e6)
    return 0.0, float((el @ ms) / (el @ el) * 1e6)


#: Costs with a per-call part (NumPy work, pools); the others are the kernels' epilogue
#: options, per element only (their deltas are small beside the conv's own time, so a fitted
#: intercept would be noise).
PER_CALL = (
    "zero_pad",
    "tile",
    "maxpool3",
    "maxpool2",
    "maxpool2_bits",
    "avgpool",
    "channel_adapter",
)


def per_element_only(samples: list[Sample]) -> tuple[float, float]:
    """``(0, ns per element)``: the median over the samples, at least 0."""
    return 0.0, max(0.0, float(np.median([t / e for e, t in samples])) * 1e6)


def _extras_at(c: int, side: int, rng: np.random.Generator, target_s: float) -> dict[str, Sample]:
    """Extra cost of each epilogue option at ``c`` channels on ``side x side`` pixels (stride
    1, c -> c), and of the zero-pad shortcut (c -> 2c, stride 2)."""
    st = _input_state(c, side, rng)
    st_float = _input_state(c, side, rng, packed=False)
    base = binary_op(c, c, 3, 1, rng)
    out_el = side * side * c

    def run(op: BinaryConv, state: State = st) -> Callable[[], Any]:
        return lambda: op.run(state)

    fed, fed_shift = binary_op(c, c, 3, 1, rng), binary_op(c, c, 3, 1, rng)
    fed.feeds(binary_op(c, 1, 1, 1, rng))
    fed_shift.feeds(binary_op(c, 1, 1, 1, rng, shift=np.zeros(c, np.float32)))
    shifted = binary_op(c, c, 3, 1, rng, shift=np.zeros(c, np.float32))
    variants = {
        "residual": run(binary_op(c, c, 3, 1, rng, shortcut="identity")),
        "hardtanh": run(binary_op(c, c, 3, 1, rng, act="hardtanh")),
        "rprelu": run(binary_op(c, c, 3, 1, rng, act="rprelu")),
        "pack_next": run(fed),
        "pack_next_shift": run(fed_shift),
        "bits_out": run(binary_op(c, c, 3, 1, rng, out="bits")),
        "pack_input": run(base, st_float),
        "pack_input_shift": run(shifted, st_float),
    }
    out = {name: _delta(run(base), fn, out_el, target_s) for name, fn in variants.items()}
    # zero-pad shortcut of a downsampling unit (c -> 2c, stride 2), per output element
    half = max(1, side // 2)
    st2 = _input_state(c, half * 2, rng)
    plain = binary_op(c, 2 * c, 3, 2, rng)
    padded = binary_op(c, 2 * c, 3, 2, rng, shortcut="zero_pad", sc_stride=2)
    out["zero_pad"] = _delta(run(plain, st2), run(padded, st2), half * half * 2 * c, target_s)
    # tile shortcut of a doubling 1x1 unit (c -> 2c), per output element
    plain, tiled = binary_op(c, 2 * c, 1, 1, rng), binary_op(c, 2 * c, 1, 1, rng, shortcut="tile")
    out["tile"] = _delta(run(plain), run(tiled), side * side * 2 * c, target_s)
    return out


def _pool_costs(c: int, side: int, rng: np.random.Generator, target_s: float) -> dict[str, Sample]:
    """Pools per *input* element (float max 3x3/2 and 2x2, bit 2x2, average 2x2) and the
    stem adapter per *output* element, at ``c`` channels on ``side x side`` pixels."""
    x = rng.standard_normal((1, side, side, c)).astype(np.float32)
    bits = State(bits=_rng_bits(rng, (1, side, side, words(c))))
    pooled = np.empty((1, -(-side // 2), -(-side // 2), c), np.float32)
    el = side * side * c
    runs = {
        "maxpool3": lambda: _max_pool(x, 3, 2, 1),
        "maxpool2": lambda: MaxPool2("p").run(State(x=x)),
        "maxpool2_bits": lambda: MaxPool2("p", on_bits=True).run(bits),
        "avgpool": lambda: _kernels.avg_pool_ceil(x, 2, pooled),
    }
    adapter = getattr(ops, "ChannelAdapter", None)  # the DWR stem adapter, in NumPy
    if adapter is not None:
        src = np.concatenate([np.arange(c), np.arange(c)])[: c + c // 2]
        vec = np.ones(len(src), np.float32)
        op = adapter("a", in_channels=c, src=src, scale=vec, shift=vec * 0, slope=vec / 4)
        # it reads the stem's max-pooled output, mostly positive; NumPy's where() is faster
        # on such runs of one sign than on random signs
        stem_out = rng.standard_normal((1, 2 * side, 2 * side, c)).astype(np.float32)
        after_pool = State(x=_max_pool(stem_out, 3, 2, 1))
        runs["channel_adapter"] = lambda: op.run(after_pool)
    out = {name: (el, _best_ms(fn, target_s)) for name, fn in runs.items()}
    if "channel_adapter" in out:  # per output element
        out["channel_adapter"] = (side * side * (c + c // 2), out["channel_adapter"][1])
    return out


def _call_ms(rng: np.random.Generator, target_s: float) -> float:
    """What a model call costs beyond its ops: checking and wrapping the input."""
    from dwr.engine.compiled import CompiledModel

    stem = FloatConv("stem", w=rng.standard_normal((8, 3, 3, 3)), b=np.zeros(8), stride=1, pad=1)
    model = CompiledModel([stem, Head("head", w=rng.standard_normal((10, 8)), b=np.zeros(10))])
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    return _best_ms(lambda: model._input(x), target_s)


#: Passes over the conv grid. A point keeps its fastest pass: on a shared or virtual machine
#: the same op's best time drifts by tens of percent from one second to the next, and a point
#: timed once keeps whatever state it met (docs/latency.md measures the drift).
PASSES = 4


def count_points(grid: Grid, passes: int = PASSES) -> int:
    """How many progress ticks :func:`measure` makes (one per timing)."""
    points = (_binary_points(grid), _float_points(grid), _stem_points(grid), _stem_points(grid))
    convs = sum(1 for kind in points for _ in kind)
    return passes * convs + sum(1 for _ in _head_points(grid)) + len(grid.extra_shapes) + 2


def measure(
    grid: str | Grid = "full",
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
    seed: int = 0,
    passes: int = PASSES,
) -> dict[str, Any]:
    """Time every grid point on ``threads`` threads, the convs in ``passes`` passes (each
    keeps its fastest); returns the table (without its key).

    ``progress(what)`` is called after each timing."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise DwrError(f"unknown profile grid {grid!r}; choose one of {sorted(GRIDS)}")
        grid_name, grid = grid, GRIDS[grid]
    else:
        grid_name = "custom"
    if int(threads) < 1:
        raise DwrError(f"threads must be >= 1, got {threads}")
    tick = progress or (lambda what: None)
    rng = np.random.default_rng(seed)
    before = _kernels.get_num_threads()
    _kernels.set_num_threads(int(threads))
    t0 = time.perf_counter()
    try:
        table: dict[str, Any] = {"format": TABLE_FORMAT, "grid": grid_name}
        for kind, points, timer in (
            ("binary_conv", _binary_points(grid), time_binary),
            ("float_conv", _float_points(grid), time_float),
            ("stem_bf16", _stem_points(grid), time_stem_bf16),
            ("stem_int8", _stem_points(grid), time_stem_int8),
            ("head", _head_points(grid), time_head),
        ):
            rows = []
            for p in points:
                rows.append({**p, "ms": timer(p, rng, grid.target_s)})
                tick(kind)
            table[kind] = rows
        for n in range(2, max(1, int(passes)) + 1):  # later passes: a slow state rarely lasts
            for kind, timer in CONV_TIMERS:
                for row in table[kind]:
                    p = {k: v for k, v in row.items() if k != "ms"}
                    row["ms"] = min(row["ms"], timer(p, rng, grid.target_s))
                    tick(f"{kind} ({n})")
        samples: dict[str, list[Sample]] = {}
        for c, side in grid.extra_shapes:
            for name, sample in _extras_at(c, side, rng, grid.target_s).items():
                samples.setdefault(name, []).append(sample)
            tick("epilogue")
        c, side = grid.extra_shapes[0]
        for shape in ((c, side), (8, 2)):  # the pools' per-call cost shows on a tiny map
            for name, sample in _pool_costs(*shape, rng, grid.target_s).items():
                samples.setdefault(name, []).append(sample)
        tick("pools")
        fits = {
            name: fit_cost(points) if name in PER_CALL else per_element_only(points)
            for name, points in samples.items()
        }
        table["per_element_ns"] = {name: f[1] for name, f in fits.items()}
        table["fixed_ms"] = {name: f[0] for name, f in fits.items()}
        table["call_ms"] = _call_ms(rng, grid.target_s)
        tick("call")
    finally:
        _kernels.set_num_threads(before)
    table["seconds"] = round(time.perf_counter() - t0, 1)
    table["passes"] = max(1, int(passes))
    return table
