"""Predicted engine latency of a spec (ms, batch 1) from a calibration table (``dwr profile``).

The table (JSON, in ``$XDG_CACHE_HOME/dwr/latency`` or ``~/.cache/dwr/latency``) holds the
engine's times of its op kinds over a grid of shapes, keyed by CPU model, kernel ISA (the
active one: ``avx512``, ``avx2``, ``portable``; ``DWR_ISA`` picks), thread count and engine
version; a table whose key differs from this machine's is refused (recalibrate with
``dwr profile``). The ops priced are the spec's lowered ops (:func:`dwr.lowering.lower_spec`,
the list the engine compiles, built without PyTorch or weights); this module imports the
compiled kernels only for their ISA's name.

What the time follows (the engine's kernels, ``docs/engine.md``):
- a binary conv is a popcount GEMM in blocks of ``tp`` pixels x ``to`` output channels over
  ``k*k*ceil(C/64)`` packed words, so its *work* is ``ceil(P/tp) * ceil(O/to) * k*k*words``;
- a float conv (stem, 1x1 shortcut) the same with its own block: ``ceil(P/tp) * ceil(O/to) *
  k*k*C``; the head is ``C * classes + P * C``. The blocks are the active kernel table's
  (:func:`kernel_tiles`; AVX2 3 x 8 and 6 x 8, AVX-512 6 x 8 and 6 x 16), stated once in
  each ISA's kernel file.
The table's throughput ``work / time`` is interpolated multilinearly in log space between grid
points (axes: input words or channels, output channels, pixels) and the query's exact work is
divided by it, so widths that waste part of a word or a tile cost what they waste. Epilogue
options, packing, pools and the zero-pad shortcut are fixed + per-element costs on top.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import math
import os
import platform
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from dwr.backbones.spec import BackboneSpec
from dwr.errors import DwrError
from dwr.lowering.ops import BinaryConv, Head, MaxPool2, Op, StemAdapter, StemConv

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
    "stem_bf16": ("k", "stride", "cin", "out", "oh"),
    "stem_int8": ("k", "stride", "cin", "out", "oh"),
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


def kernel_tiles() -> dict[str, tuple[int, int]]:
    """The active kernel table's blocks, ``{"binary": (pixels, outputs), "float": ...}``:
    each ISA's kernel file states its own (``Kernels::binary_tile``, ``float_tile``)."""
    from dwr.engine import _kernels

    return {kind: tuple(tile) for kind, tile in _kernels.tiles().items()}


def binary_work(k: int, words: int, out: int, pixels: int) -> float:
    """Popcount GEMM blocks (the active ISA's pixels x outputs) times packed words a block."""
    tp, to = kernel_tiles()["binary"]
    return _ceil_div(pixels, tp) * _ceil_div(out, to) * k * k * words


def float_work(k: int, cin: int, out: int, pixels: int) -> float:
    """Float conv blocks (the active ISA's pixels x outputs) times MACs per block output."""
    tp, to = kernel_tiles()["float"]
    return _ceil_div(pixels, tp) * _ceil_div(out, to) * k * k * cin


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
        self._stems = {
            precision: self._groups(
                data[f"stem_{precision}"],
                lambda r: (r["k"], r["stride"]),
                lambda r: (r["cin"], r["out"], r["oh"] ** 2),
                lambda r: float_work(r["k"], r["cin"], r["out"], r["oh"] ** 2),
            )
            for precision in ("bf16", "int8")
        }
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

    def float_ms(
        self, k: int, stride: int, cin: int, out: int, pixels: int, precision: str = "f32"
    ) -> float:
        """A float conv's time; a stem at ``precision="bf16"`` or ``"int8"`` from that
        precision's stem rows."""
        grids = self._stems.get(precision, self._float)
        grid, k = self._pick(grids, k, stride)
        return float_work(k, cin, out, pixels) / grid(cin, out, pixels)

    def head_ms(self, cin: int, classes: int, pixels: int) -> float:
        return head_work(cin, classes, pixels) / self._head[()](cin, classes, pixels)

    def per_element_ms(self, name: str, elements: int) -> float:
        """A cost measured as ``fixed + ns * elements`` (epilogue options, pools, adapter)."""
        ns = self.per_element_ns.get(name, 0.0)
        return self.fixed_ms.get(name, 0.0) + ns * elements * 1e-6


# -- the engine's ops for a spec ------------------------------------------------------------------
def outline(spec: BackboneSpec, input_size: tuple[int, int, int] | None = None) -> list[Op]:
    """The ops the engine runs for ``spec``: its lowered ops (:func:`dwr.lowering.lower_spec`,
    the list the engine compiles), with shapes, bit outputs and where signs are packed."""
    from dwr.lowering import lower_spec

    return lower_spec(spec, input_size)


@lru_cache(maxsize=4096)
def _outline(spec_json: str, input_size: tuple[int, int, int]) -> list[Op]:
    return outline(BackboneSpec.from_json(spec_json), input_size)


# -- prices ---------------------------------------------------------------------------------------
def _pixels(hw: tuple[int, int]) -> int:
    return hw[0] * hw[1]


def _unit_ms(op: BinaryConv, table: LatencyTable) -> float:
    el = table.per_element_ms
    p_in, p_out = _pixels(op.in_hw), _pixels(op.out_hw)
    out_el = p_out * op.out_channels
    t = table.binary_ms(op.k, op.stride, op.in_channels, op.out_channels, p_out)
    if not op.packed_input:
        t += el("pack_input_shift" if op.shifted else "pack_input", p_in * op.in_channels)
    if op.output == "bits":
        t += el("bits_out", out_el)
    if op.act != "none":
        t += el(op.act, out_el)
    if op.pack_next:
        t += el("pack_next_shift" if op.pack_next == "shift" else "pack_next", out_el)
    sc, s = op.shortcut, op.sc_stride
    if sc in ("identity", "conv", "avgpool_conv", "avgpool"):
        t += el("residual", out_el)
    if sc in ("zero_pad", "tile"):  # NumPy copies, the residual add included
        t += el(sc, out_el)
    if sc in ("avgpool", "avgpool_conv") and s > 1:
        t += el("avgpool", p_in * op.in_channels)
        s = 1
    if sc in ("conv", "avgpool_conv"):
        t += table.float_ms(1, s, op.in_channels, op.out_channels, p_out)
    return t


def op_ms(op: Op, table: LatencyTable) -> float:
    """Predicted time of one lowered op (ms)."""
    el = table.per_element_ms
    if isinstance(op, StemConv):
        conv_px = _pixels(op.conv_hw(op.in_hw))
        t = table.float_ms(op.k, op.stride, op.in_channels, op.out_channels, conv_px, op.precision)
        if op.pool != "none":
            t += el({"max3": "maxpool3", "max2": "maxpool2"}[op.pool], conv_px * op.out_channels)
        return t
    if isinstance(op, MaxPool2):
        return el("maxpool2_bits" if op.on_bits else "maxpool2", _pixels(op.in_hw) * op.in_channels)
    if isinstance(op, Head):
        return table.head_ms(op.in_channels, op.out_channels, _pixels(op.in_hw))
    if isinstance(op, StemAdapter):
        return el("channel_adapter", _pixels(op.out_hw) * op.out_channels)
    return max(_unit_ms(op, table), 1e-4)


@dataclass
class LatencyReport:
    """Per-op predicted times (ms) and their total, batch 1."""

    threads: int
    ops: list[tuple[Op, float]]
    call_ms: float

    @property
    def total_ms(self) -> float:
        return self.call_ms + sum(ms for _, ms in self.ops)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "name": op.name,
                "kind": op.kind,
                "in": [op.in_channels, *op.in_hw],
                "out": [op.out_channels, *op.out_hw],
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
    stem_precision: str = "f32",
) -> LatencyReport:
    """Predicted engine latency of ``spec`` per op (batch 1), its stem compiled at
    ``stem_precision``; loads this machine's table for ``threads`` when none is given."""
    table = table or load_table(threads)
    ops = list(_outline(spec.to_json(), tuple(input_size or spec.input_size)))
    ops[0] = dataclasses.replace(ops[0], precision=stem_precision)  # the cached list stays
    return LatencyReport(
        int(table.key["threads"]), [(op, op_ms(op, table)) for op in ops], table.call_ms
    )


def predict_ms(
    spec: BackboneSpec,
    input_size: tuple[int, int, int] | None = None,
    threads: int = 1,
    table: LatencyTable | None = None,
    stem_precision: str = "f32",
) -> float:
    """Predicted end-to-end engine time of ``spec`` in ms (batch 1)."""
    return predict(spec, table, input_size, threads, stem_precision).total_ms
