"""Predicted engine latency of a spec (ms, batch 1) from a calibration table (``dwr profile``).

The table (JSON, in ``$XDG_CACHE_HOME/dwr/latency`` or ``~/.cache/dwr/latency``) holds the
engine's times of its op kinds over a grid of shapes, keyed by CPU model, kernel ISA (the
active one: ``avx512``, ``avx2``, ``portable``; ``DWR_ISA`` picks), thread count and engine
version; a table whose key differs from this machine's is refused (recalibrate with
``dwr profile``). This module imports only the compiled kernels (for their ISA's name), never
the engine's planner: it lists the ops the engine would run for a spec (:func:`outline`, the
same rules as the engine's plan) and prices each one.

What the time follows (the engine's kernels, ``docs/engine.md``):
- a binary conv is a popcount GEMM in tiles of 3 pixels x 8 output channels over
  ``k*k*ceil(C/64)`` packed words, so its *work* is ``ceil(P/3) * ceil(O/8) * k*k*words``;
- a float conv (stem, 1x1 shortcut) tiles 6 pixels x 16 outputs: ``ceil(P/6) * ceil(O/16) *
  k*k*C``; the head is ``C * classes + P * C``.
The table's throughput ``work / time`` is interpolated multilinearly in log space between grid
points (axes: input words or channels, output channels, pixels) and the query's exact work is
divided by it, so widths that waste part of a word or a tile cost what they waste. Epilogue
options, packing, pools and the zero-pad shortcut are fixed + per-element costs on top.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.util
import itertools
import json
import math
import os
import platform
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from dwr.backbones.spec import BackboneSpec
from dwr.errors import DwrError

TABLE_FORMAT = 1


# -- where a table lives and what it is keyed by ------------------------------------------------
def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dwr`` (else ``~/.cache/dwr``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dwr"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _kernel_binary() -> Path | None:
    spec = importlib.util.find_spec("dwr.engine")  # imports dwr only, not the engine
    for folder in (spec.submodule_search_locations or []) if spec else []:
        hits = sorted(Path(folder).glob("_kernels*"))
        if hits:
            return hits[0]
    return None


@lru_cache(maxsize=1)
def engine_version() -> str:
    """``dwr`` version + a digest of the compiled kernels (a rebuild is a new engine)."""
    from dwr import __version__

    binary = _kernel_binary()
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12] if binary else "none"
    return f"{__version__}+{digest}"


def kernel_isa() -> str:
    """The engine's active kernel ISA (``avx512``, ``avx2``, ``portable``; DWR_ISA picks)."""
    from dwr.engine import _kernels

    return _kernels.isa()


def runtime_key(threads: int) -> dict[str, Any]:
    """What a table must match to be used here."""
    return {
        "cpu": cpu_model(),
        "isa": kernel_isa(),
        "threads": int(threads),
        "engine": engine_version(),
    }


def table_path(threads: int = 1) -> Path:
    """This machine's table for ``threads`` threads with the active kernel ISA."""
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-") or "cpu"
    return cache_dir() / "latency" / f"{slug}-{kernel_isa()}-{int(threads)}t.json"


def save_table(table: dict[str, Any], path: str | Path | None = None) -> Path:
    """Write ``table`` atomically (:func:`dwr.files.atomic_write_json`) and return its path."""
    from dwr.files import atomic_write_json

    path = Path(path) if path else table_path(table["key"]["threads"])
    atomic_write_json(path, table, indent=1)
    _read.cache_clear()
    return path


def _mismatch(key: dict[str, Any], threads: int) -> str:
    want = runtime_key(threads)
    names = {
        "cpu": "CPU",
        "isa": "kernel ISA",
        "threads": "thread count",
        "engine": "engine version",
    }
    return "; ".join(
        f"{names[k]} {key.get(k)!r} (here {want[k]!r})" for k in names if key.get(k) != want[k]
    )


@lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int) -> LatencyTable:
    from dwr.files import read_text

    try:
        data = json.loads(read_text(path, "latency table"))
    except (OSError, ValueError) as exc:
        raise DwrError(f"cannot read latency table {path}: {exc}; rerun `dwr profile`") from None
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT or "key" not in data:
        raise DwrError(f"{path} is not a dwr latency table (format {TABLE_FORMAT})")
    try:
        check_table(data)
        return LatencyTable(data)
    except (DwrError, KeyError, TypeError, ValueError, IndexError) as exc:
        why = str(exc) if isinstance(exc, DwrError) else repr(exc)
        raise DwrError(
            f"{path} is a damaged latency table ({why}); rerun `dwr profile` to measure it again"
        ) from None


#: The shape fields of each kind of timed row (positive integers) besides its ``ms``.
ROW_FIELDS = {
    "binary_conv": ("k", "stride", "words", "out", "oh"),
    "float_conv": ("k", "stride", "cin", "out", "oh"),
    "head": ("cin", "classes", "h"),
}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_table(data: dict[str, Any]) -> None:
    """Refuse (:class:`DwrError`, a short reason) a table whose times would be wrong: a kind
    of op with no rows, a shape that is not a positive integer, a time that is NaN, infinite,
    zero or negative (a zero time is an infinite rate), or non-finite fitted costs."""
    for kind, fields in ROW_FIELDS.items():
        rows = data.get(kind)
        if not isinstance(rows, list) or not rows:
            raise DwrError(f"it has no {kind} timings")
        for r in rows:
            if not isinstance(r, dict):
                raise DwrError(f"a {kind} row is {type(r).__name__}, not a mapping")
            for f in fields:
                v = r.get(f)
                if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                    raise DwrError(f"a {kind} row has {f} = {v!r}")
            if not (_finite(r.get("ms")) and r["ms"] > 0):
                raise DwrError(f"a {kind} time is {r.get('ms')!r} ms; times must be > 0")
    for name in ("per_element_ns", "fixed_ms"):
        costs = data.get(name, {})
        if not isinstance(costs, dict) or not all(_finite(v) for v in costs.values()):
            raise DwrError(f"its {name} are not all finite numbers")
    if not (_finite(data.get("call_ms", 0.0)) and data.get("call_ms", 0.0) >= 0):
        raise DwrError(f"call_ms is {data.get('call_ms')!r}")


def load_table(threads: int = 1, path: str | Path | None = None) -> LatencyTable:
    """The calibration table for ``threads`` threads on this machine (or the one at ``path``).

    Refuses (:class:`DwrError`) a missing table, and one measured on another CPU, thread count
    or engine version: its times would be wrong here; ``dwr profile`` recalibrates."""
    where = Path(path) if path else table_path(threads)
    rerun = f"run `dwr profile --threads {threads}`"
    if not where.is_file():
        raise DwrError(
            f"no latency calibration table for {threads} thread(s) on this CPU ({where}); "
            f"{rerun} first (a few minutes)"
        )
    table = _read(str(where), where.stat().st_mtime_ns)
    diff = _mismatch(table.key, threads)
    if diff:
        raise DwrError(f"refusing latency table {where}: it was measured with {diff}; {rerun}")
    return table


# -- interpolation -------------------------------------------------------------------------------
def _dist(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


class _LogGrid:
    """``log(value)`` on the product of each axis' measured values (log coordinates).

    A cell the profile skipped (work above its cap) takes the nearest measured cell along the
    last (pixel) axis, where the rate is steady at that size; failing that, the nearest one."""

    def __init__(self, points: list[tuple[tuple[float, ...], float]]) -> None:
        dims = len(points[0][0])
        self.axes = [sorted({math.log(p[0][d]) for p in points}) for d in range(dims)]
        known = {tuple(math.log(c) for c in coords): math.log(v) for coords, v in points}
        self.cells: dict[tuple[float, ...], float] = {}
        for cell in itertools.product(*self.axes):
            if cell in known:
                self.cells[cell] = known[cell]
                continue
            line = [k for k in known if k[:-1] == cell[:-1]] or list(known)
            self.cells[cell] = known[min(line, key=lambda k, c=cell: _dist(k, c))]

    def __call__(self, *coords: float) -> float:
        corners = []
        for axis, x in zip(self.axes, coords, strict=True):
            lx = min(max(math.log(x), axis[0]), axis[-1])  # beyond the grid: its edge rate
            i = min(max(bisect.bisect_right(axis, lx) - 1, 0), max(len(axis) - 2, 0))
            if len(axis) == 1:
                corners.append(((axis[0], 1.0),))
                continue
            t = (lx - axis[i]) / (axis[i + 1] - axis[i])
            corners.append(((axis[i], 1 - t), (axis[i + 1], t)))
        total = 0.0
        for combo in itertools.product(*corners):
            w = math.prod(c[1] for c in combo)
            if w:
                total += w * self.cells[tuple(c[0] for c in combo)]
        return math.exp(total)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def binary_work(k: int, words: int, out: int, pixels: int) -> float:
    """Popcount tiles (3 pixels x 8 outputs) times packed words per tile."""
    return _ceil_div(pixels, 3) * _ceil_div(out, 8) * k * k * words


def float_work(k: int, cin: int, out: int, pixels: int) -> float:
    """Float conv tiles (6 pixels x 16 outputs) times MACs per tile output."""
    return _ceil_div(pixels, 6) * _ceil_div(out, 16) * k * k * cin


def head_work(cin: int, classes: int, pixels: int) -> float:
    return cin * classes + pixels * cin


class LatencyTable:
    """A loaded calibration table: op times from shapes."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.key = data["key"]
        self.per_element_ns: dict[str, float] = dict(data["per_element_ns"])
        self.fixed_ms: dict[str, float] = dict(data.get("fixed_ms", {}))
        self.call_ms = float(data.get("call_ms", 0.0))
        self._binary = self._groups(
            data["binary_conv"],
            lambda r: (r["k"], r["stride"]),
            lambda r: (r["words"], r["out"], r["oh"] ** 2),
            lambda r: binary_work(r["k"], r["words"], r["out"], r["oh"] ** 2),
        )
        self._float = self._groups(
            data["float_conv"],
            lambda r: (r["k"], r["stride"]),
            lambda r: (r["cin"], r["out"], r["oh"] ** 2),
            lambda r: float_work(r["k"], r["cin"], r["out"], r["oh"] ** 2),
        )
        self._head = self._groups(
            data["head"],
            lambda r: (),
            lambda r: (r["cin"], r["classes"], r["h"] ** 2),
            lambda r: head_work(r["cin"], r["classes"], r["h"] ** 2),
        )

    @staticmethod
    def _groups(rows, group, coords, work) -> dict[tuple, _LogGrid]:
        by: dict[tuple, list] = {}
        for r in rows:
            by.setdefault(group(r), []).append((coords(r), work(r) / max(r["ms"], 1e-6)))
        return {g: _LogGrid(points) for g, points in by.items()}

    @staticmethod
    def _pick(grids: dict[tuple, _LogGrid], k: int, stride: int) -> tuple[_LogGrid, int]:
        """The grid of ``(k, stride)``; else the same kernel, else the nearest kernel (its
        rate, this kernel's work)."""
        if (k, stride) in grids:
            return grids[(k, stride)], k
        same = [g for g in grids if g[0] == k] or sorted(grids, key=lambda g: abs(g[0] - k))
        if not same:
            raise DwrError("the latency table has no convolution timings; rerun `dwr profile`")
        return grids[same[0]], k

    def binary_ms(self, k: int, stride: int, cin: int, out: int, pixels: int) -> float:
        grid, k = self._pick(self._binary, k, stride)
        words = _ceil_div(cin, 64)
        return binary_work(k, words, out, pixels) / grid(words, out, pixels)

    def float_ms(self, k: int, stride: int, cin: int, out: int, pixels: int) -> float:
        grid, k = self._pick(self._float, k, stride)
        return float_work(k, cin, out, pixels) / grid(cin, out, pixels)

    def head_ms(self, cin: int, classes: int, pixels: int) -> float:
        return head_work(cin, classes, pixels) / self._head[()](cin, classes, pixels)

    def per_element_ms(self, name: str, elements: int) -> float:
        """A cost measured as ``fixed + ns * elements`` (epilogue options, pools, adapter)."""
        ns = self.per_element_ns.get(name, 0.0)
        return self.fixed_ms.get(name, 0.0) + ns * elements * 1e-6


# -- the engine's ops for a spec -------------------------------------------------------------------
@dataclass
class EngineOp:
    """One op the engine runs, with what its time depends on."""

    name: str
    kind: str  # "stem" | "binary_conv" | "maxpool2" | "head"
    cin: int
    out: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    k: int = 3
    stride: int = 1
    opts: dict[str, Any] = field(default_factory=dict)


def _conv_out(hw: tuple[int, int], k: int, s: int, p: int) -> tuple[int, int]:
    return tuple((v + 2 * p - k) // s + 1 for v in hw)  # type: ignore[return-value]


#: Stem conv (kernel, stride, padding) and pool of each ``spec.stem``.
_STEMS = {
    "imagenet": (7, 2, 3, "maxpool3"),
    "cifar": (3, 1, 1, "none"),
    "cifar_pool": (3, 1, 1, "maxpool2"),
    "mobilenet": (3, 2, 1, "none"),
}


def outline(spec: BackboneSpec, input_size: tuple[int, int, int] | None = None) -> list[EngineOp]:
    """The engine's op list for ``spec``: stem, stem adapter, then the spec's unit list
    (:func:`dwr.backbones.units.stage_units`: binary convs and 2x2 pools), then the head, with
    the plan's rules: a unit whose consumer only needs a sign emits bits (VGG), and a unit
    followed by a unit packs that unit's input in its epilogue (``tests/cost`` checks the
    list against the engine's plan for every registered backbone)."""
    from dwr.backbones.methods import METHOD_TABLE
    from dwr.backbones.units import Pool, stage_units

    c, h, w = input_size or spec.input_size
    spec.output_size(h, w)  # a clear error when the input is too small
    if spec.stem not in _STEMS:
        raise DwrError(f"the latency model does not know the stem {spec.stem!r}")
    method = METHOD_TABLE[spec.method]
    act = {"hardtanh": "hardtanh", "rprelu": "rprelu"}.get(method.activation, "none")
    k, s, p, pool = _STEMS[spec.stem]
    conv_hw = _conv_out((h, w), k, s, p)
    hw = {"maxpool3": _conv_out(conv_hw, 3, 2, 1), "maxpool2": _conv_out(conv_hw, 2, 2, 0)}
    hw = hw.get(pool, conv_hw)
    opts = {"pad": p, "pool": pool, "conv_hw": conv_hw}
    ops = [EngineOp("stem", "stem", c, spec.stem_width, (h, w), hw, k, s, opts)]
    cin = spec.stem_width
    if spec.stem_adapter:  # the DWR authors' stem adapter
        ops.append(EngineOp("stem.adapter", "channel_adapter", cin, spec.widths[0], hw, hw, 1, 1))
        cin = spec.widths[0]
    for i, stage in enumerate(stage_units(spec)):
        for j, u in enumerate(stage):
            name = f"stages.{i}.{j}"
            if isinstance(u, Pool):
                out_hw = (hw[0] // 2, hw[1] // 2)
                ops.append(EngineOp(name, "maxpool2", cin, cin, hw, out_hw, 2, 2, {}))
                hw = out_hw
                continue
            out_hw = _conv_out(hw, u.kernel, u.stride, u.padding)
            sc = "conv" if u.shortcut == "avgpool_conv" and u.stride == 1 else u.shortcut
            opts = {"shortcut": sc, "sc_stride": u.stride, "act": act, "shift": method.rsign}
            ops.append(EngineOp(name, "binary_conv", u.in_channels, u.out_channels, hw, out_hw,
                                u.kernel, u.stride, {**opts, "out": "float"}))  # fmt: skip
            cin, hw = u.out_channels, out_hw
    ops.append(EngineOp("head", "head", cin, spec.num_classes, hw, (1, 1), 1, 1, {}))
    _plan_flags(ops)
    return ops


@lru_cache(maxsize=4096)
def _outline(spec_json: str, input_size: tuple[int, int, int]) -> list[EngineOp]:
    return outline(BackboneSpec.from_json(spec_json), input_size)


def _plan_flags(ops: list[EngineOp]) -> None:
    """Bit outputs (engine ``_fold_signs``), epilogue packing (``feeds``) and packed inputs."""
    for i, op in enumerate(ops):
        if op.kind != "binary_conv" or op.opts["shortcut"] != "none":
            continue
        if op.opts["act"] not in ("none", "hardtanh"):
            continue
        j = i + 1 + (ops[i + 1].kind == "maxpool2")
        nxt = ops[j] if j < len(ops) else None
        if nxt is not None and nxt.kind == "binary_conv" and not nxt.opts["shift"]:
            op.opts["out"] = "bits"
            if j == i + 2:
                ops[i + 1].opts["on_bits"] = True
    packed = False
    for op, nxt in zip(ops, ops[1:] + [None], strict=True):
        if op.kind == "binary_conv":
            op.opts["packed_input"] = packed
            feeds = op.opts["out"] == "float" and nxt is not None and nxt.kind == "binary_conv"
            op.opts["pack_next"] = "shift" if feeds and nxt.opts["shift"] else bool(feeds)
            packed = op.opts["out"] == "bits" or feeds
        elif op.kind != "maxpool2":
            packed = False


# -- prices ---------------------------------------------------------------------------------------
def _pixels(hw: tuple[int, int]) -> int:
    return hw[0] * hw[1]


def op_ms(op: EngineOp, table: LatencyTable) -> float:
    """Predicted time of one engine op (ms)."""
    el = table.per_element_ms
    if op.kind == "stem":
        conv_hw = op.opts["conv_hw"]
        t = table.float_ms(op.k, op.stride, op.cin, op.out, _pixels(conv_hw))
        if op.opts["pool"] != "none":
            t += el(op.opts["pool"], _pixels(conv_hw) * op.out)
        return t
    if op.kind == "maxpool2":
        return el(
            "maxpool2_bits" if op.opts.get("on_bits") else "maxpool2", _pixels(op.in_hw) * op.cin
        )
    if op.kind == "head":
        return table.head_ms(op.cin, op.out, _pixels(op.in_hw))
    if op.kind == "channel_adapter":
        return el("channel_adapter", _pixels(op.out_hw) * op.out)
    o = op.opts
    p_in, p_out = _pixels(op.in_hw), _pixels(op.out_hw)
    out_el = p_out * op.out
    t = table.binary_ms(op.k, op.stride, op.cin, op.out, p_out)
    if not o["packed_input"]:
        t += el("pack_input_shift" if o["shift"] else "pack_input", p_in * op.cin)
    if o["out"] == "bits":
        t += el("bits_out", out_el)
    if o["act"] != "none":
        t += el(o["act"], out_el)
    if o["pack_next"]:
        t += el("pack_next_shift" if o["pack_next"] == "shift" else "pack_next", out_el)
    sc = o["shortcut"]
    if sc in ("identity", "conv", "avgpool_conv", "avgpool"):
        t += el("residual", out_el)
    if sc in ("zero_pad", "tile"):  # NumPy copies, the residual add included
        t += el(sc, out_el)
    elif sc == "avgpool":
        t += el("avgpool", p_in * op.cin)
    elif sc == "conv":
        t += table.float_ms(1, o["sc_stride"], op.cin, op.out, p_out)
    elif sc == "avgpool_conv":
        if o["sc_stride"] > 1:
            t += el("avgpool", p_in * op.cin)
        t += table.float_ms(1, 1, op.cin, op.out, p_out)
    return max(t, 1e-4)


@dataclass
class LatencyReport:
    """Per-op predicted times (ms) and their total, batch 1."""

    threads: int
    ops: list[tuple[EngineOp, float]]
    call_ms: float

    @property
    def total_ms(self) -> float:
        return self.call_ms + sum(ms for _, ms in self.ops)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "name": op.name,
                "kind": op.kind,
                "in": [op.cin, *op.in_hw],
                "out": [op.out, *op.out_hw],
                "ms": ms,
            }
            for op, ms in self.ops
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "total_ms": self.total_ms,
            "call_ms": self.call_ms,
            "layers": self.rows(),
        }


def predict(
    spec: BackboneSpec,
    table: LatencyTable | None = None,
    input_size: tuple[int, int, int] | None = None,
    threads: int = 1,
) -> LatencyReport:
    """Predicted engine latency of ``spec`` per op (batch 1); loads this machine's table for
    ``threads`` when none is given."""
    table = table or load_table(threads)
    ops = _outline(spec.to_json(), tuple(input_size or spec.input_size))
    return LatencyReport(
        int(table.key["threads"]), [(op, op_ms(op, table)) for op in ops], table.call_ms
    )


def predict_ms(
    spec: BackboneSpec,
    input_size: tuple[int, int, int] | None = None,
    threads: int = 1,
    table: LatencyTable | None = None,
) -> float:
    """Predicted end-to-end engine time of ``spec`` in ms (batch 1)."""
    return predict(spec, table, input_size, threads).total_ms
