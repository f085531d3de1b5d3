"""Latency measurement of the engine against PyTorch (shared by ``dwr bench`` and
``benchmarks/engine.py``).

Three runners per model, all on the same input (batch B, the spec's default image size):
- ``engine``: the compiled model;
- ``torch_float``: the same architecture with full-precision convs (``binary=False``),
  float32, channels_last, ``torch.inference_mode``;
- ``torch_bnn``: the BNN itself in PyTorch (binarizers simulated in float), channels_last.

Each runner is timed ``repeats`` times after a warm-up; we report the minimum and the median
(the machine may be shared, so the minimum is the steadier figure).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dwr.engine import _kernels
from dwr.engine.compiled import CompiledModel
from dwr.engine.pack import pack_weight, words


@dataclass
class Timing:
    min_ms: float
    median_ms: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def measure(
    fn: Callable[[], Any], repeats: int = 20, warmup: int = 3, budget_s: float = 10.0
) -> Timing:
    """Min and median wall time of ``fn()`` in ms over ``repeats`` runs (capped by budget)."""
    for _ in range(max(1, warmup)):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break
    return Timing(min(times), statistics.median(times))


def set_threads(n: int) -> None:
    """Same thread count for the engine's kernels and PyTorch."""
    _kernels.set_num_threads(n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _channels_last(model: nn.Module) -> nn.Module:
    return model.eval().to(memory_format=torch.channels_last)


def time_model(
    model: nn.Module,
    engine: CompiledModel,
    float_twin: nn.Module | None,
    batch: int,
    threads: int,
    repeats: int = 20,
    size: tuple[int, int] | None = None,
    input_size: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """Latency (ms) of the engine, the float32 twin (if any) and the float-simulated BNN, on
    ``input_size`` (default: the spec's) with the side overridden by ``size``."""
    set_threads(threads)
    spec = getattr(model, "spec", None)
    c, h, w = input_size or spec.input_size
    if size is not None:
        h, w = size
    x = torch.randn(batch, c, h, w)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = {
        "model": spec.name if spec is not None else type(model).__name__,
        "threads": threads,
        "batch": batch,
        "input": [c, h, w],
    }
    out["engine"] = measure(lambda: engine(x), repeats).to_dict()
    out["engine_ops_ms"] = op_profile(engine, x, repeats)
    with torch.inference_mode():
        if float_twin is not None:
            twin = _channels_last(float_twin)
            out["torch_float"] = measure(lambda: twin(x_cl), repeats).to_dict()
        bnn = _channels_last(model)
        out["torch_bnn"] = measure(lambda: bnn(x_cl), repeats).to_dict()
    model.to(memory_format=torch.contiguous_format)
    return out


def op_profile(engine: CompiledModel, x: torch.Tensor, repeats: int = 20) -> dict[str, float]:
    """Minimum time (ms) of each op over ``repeats`` passes; their sum is the latency of an
    undisturbed run (on a shared machine a 20 ms end-to-end call is rarely undisturbed)."""
    best: dict[str, float] = {}
    for _ in range(max(2, repeats)):
        st = engine._input(x)
        for op in engine.ops:
            t = time.perf_counter()
            st = op.run(st)
            dt = (time.perf_counter() - t) * 1e3
            best[op.name] = min(best.get(op.name, dt), dt)
    return best


def time_layer(
    channels: int, size: int, threads: int, repeats: int = 30, batch: int = 1
) -> dict[str, Any]:
    """One binary 3x3 conv (stride 1, pad 1), ``channels -> channels`` at ``size x size``:
    the engine (packed input -> float output with BN folded) against float32 conv2d."""
    set_threads(threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, size, size, channels, generator=g).numpy()
    wt = torch.randn(channels, channels, 3, 3, generator=g)
    wbits, wpop = pack_weight(wt.numpy())
    wprep = _kernels.prepare_weight(wbits)  # made once per layer, as a compiled model does
    bits = np.empty((batch, size, size, words(channels)), dtype=np.uint64)
    _kernels.pack_signs(x, None, bits)
    scale = np.ones(channels, np.float32)
    bias = np.zeros(channels, np.float32)
    out = np.empty((batch, size, size, channels), np.float32)

    def engine() -> None:
        _kernels.conv_float(
            bits,
            wbits,
            wpop,
            channels,
            3,
            1,
            1,
            scale,
            bias,
            None,
            0,
            None,
            None,
            None,
            out,
            wprep=wprep,
        )

    xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # channels_last NCHW view
    w_cl = wt.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        tt = measure(lambda: F.conv2d(xt, w_cl, None, 1, 1), repeats)
    te = measure(engine, repeats)
    macs = batch * size * size * channels * channels * 9
    return {
        "shape": f"{channels}@{size}",
        "threads": threads,
        "torch_ms": tt.min_ms,
        "engine_ms": te.min_ms,
        "torch_median_ms": tt.median_ms,
        "engine_median_ms": te.median_ms,
        "speedup": tt.min_ms / te.min_ms,
        "gbmacs": macs / (te.min_ms * 1e-3) / 1e9,
    }


def popcount_peak(repeats: int = 5, iters: int = 1_000_000) -> float:
    """The active kernels' GEMM arithmetic (XOR, popcount, add) on registers, without loads,
    in G binary MACs/s, best of ``repeats``: the ceiling a binary conv is measured against."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        macs, _ = _kernels.popcount_peak(iters)
        best = min(best, time.perf_counter() - t)
    return macs / best / 1e9


def time_isas(
    isas: list[str], fn: Callable[[], dict[str, float]], rounds: int = 3
) -> dict[str, dict[str, float]]:
    """``fn()`` (a dict of timings, smaller is better) under each kernel ISA in turn,
    interleaved over ``rounds``; per ISA the best of each entry. Restores the active ISA."""
    before = _kernels.isa()
    runs: dict[str, list[dict[str, float]]] = {isa: [] for isa in isas}
    try:
        for _ in range(rounds):
            for isa in isas:
                _kernels.set_isa(isa)
                runs[isa].append(fn())
    finally:
        _kernels.set_isa(before)
    return {isa: {k: min(r[k] for r in rs) for k in rs[0]} for isa, rs in runs.items()}
