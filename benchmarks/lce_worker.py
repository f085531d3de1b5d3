"""Larq Compute Engine side of ``benchmarks/vs_lce.py``; run by the Python of a separate venv.

    TF_USE_LEGACY_KERAS=1 LCE_PYTHON benchmarks/lce_worker.py

Builds larq-zoo's ``BiRealNet`` (Bi-Real-18, 224x224, random weights: ``weights=None``, so
nothing is downloaded), converts it with ``larq_compute_engine.convert_keras_model`` and makes
one LCE interpreter per (threads, kernel). Then it answers requests, one JSON object per line
on stdin -> one per line on stdout, so the caller can interleave its own timings with these:

    {"threads": 1, "kernel": "default" | "indirect_bgemm" | ..., "repeats": 20}
    -> {"min_ms": ..., "median_ms": ..., "runs": ...}

The first line it prints describes the model (or the error). Imports nothing from dwr.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


#: LCE's binary-conv kernels: its default BGEMM, its indirect BGEMM, and the indirect one with
#: TFLite's XNNPack delegate for the float layers (the stem, shortcuts, classifier).
KERNELS = ("default", "indirect_bgemm", "indirect_bgemm_xnnpack")


def _reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def build(threads: list[int]) -> tuple[dict, dict]:
    """The converted Bi-Real-18 and its interpreters, keyed by ``(threads, kernel)``."""
    import larq_compute_engine as lce
    import larq_zoo as lqz
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    model = lqz.literature.BiRealNet(input_shape=(224, 224, 3), weights=None, num_classes=1000)
    flatbuffer = lce.convert_keras_model(model)
    interpreters = {}
    for t in threads:
        for kernel in KERNELS:
            interpreters[(t, kernel)] = Interpreter(
                flatbuffer,
                num_threads=t,
                use_indirect_bgemm="indirect_bgemm" in kernel,
                use_xnnpack="xnnpack" in kernel,
            )
    x = np.random.default_rng(0).standard_normal((1, 224, 224, 3)).astype(np.float32)
    outs = [it.interpreter.predict([x])[0] for it in interpreters.values()]
    agree = all(np.allclose(o, outs[0], rtol=1e-3, atol=1e-4) for o in outs)
    info = {
        "model": "larq_zoo.literature.BiRealNet (random weights)",
        "params": int(model.count_params()),
        "flatbuffer_bytes": len(flatbuffer),
        "input": [1, 224, 224, 3],
        "kernels_agree": bool(agree),
        "versions": {
            "larq_compute_engine": getattr(lce, "__version__", "?"),
            "larq_zoo": _version("larq-zoo"),
            "larq": _version("larq"),
            "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        },
    }
    return info, {"interpreters": interpreters, "x": x}


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def time_one(state: dict, threads: int, kernel: str, repeats: int) -> dict:
    it = state["interpreters"][(threads, kernel)].interpreter
    x = state["x"]
    for _ in range(3):
        it.predict([x])
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        it.predict([x])
        times.append((time.perf_counter() - t) * 1e3)
    return {"min_ms": min(times), "median_ms": statistics.median(times), "runs": len(times)}


def main() -> int:
    threads = [int(t) for t in (sys.argv[1:] or ["1", "2"])]
    try:
        info, state = build(threads)
    except Exception as exc:  # report, never a traceback on the caller's screen
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _reply(info)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            _reply(time_one(state, int(req["threads"]), req["kernel"], int(req["repeats"])))
        except Exception as exc:
            _reply({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
