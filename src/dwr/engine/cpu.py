"""What CPU the engine runs on: its model name and AVX-512 features, for benchmark reports.

Read from ``/proc/cpuinfo`` where there is one (Linux); elsewhere only the model that
:mod:`platform` gives, with no feature list.
"""

from __future__ import annotations

import platform
from pathlib import Path

from dwr.engine import _kernels

CPUINFO = Path("/proc/cpuinfo")


def _first_cpu(text: str) -> dict[str, str]:
    """The ``key: value`` lines of the first processor block of a cpuinfo text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_info(cpuinfo: Path = CPUINFO) -> dict[str, object]:
    """``{"model", "avx512", "kernel_isas"}``: the CPU's model name, its AVX-512 feature
    flags (``avx512f`` -> ``"f"``, ``avx512_vnni`` -> ``"vnni"``), and the kernel tables it
    runs, best first."""
    try:
        fields = _first_cpu(cpuinfo.read_text(errors="replace"))
    except OSError:
        fields = {}
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    avx512 = [f.removeprefix("avx512").lstrip("_") for f in flags if f.startswith("avx512")]
    return {"model": model, "avx512": avx512, "kernel_isas": list(_kernels.isas())}


def describe_cpu(info: dict[str, object] | None = None) -> str:
    """One line: the model, its AVX-512 features (or none) and the kernel tables it runs."""
    info = cpu_info() if info is None else info
    avx512 = " ".join(info["avx512"]) or "none"  # type: ignore[arg-type]
    isas = ", ".join(info["kernel_isas"])  # type: ignore[arg-type]
    return f"cpu {info['model']}  avx512: {avx512}  kernels: {isas}"
