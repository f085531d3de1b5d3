"""The NEON kernel table is bit-identical to the portable one: the C++ driver
csrc/engine/tests/neon_vs_portable.cpp, cross-compiled for aarch64 and run under qemu-aarch64
(600 random conv layers over every epilogue, activation, stride and padding, plus packing,
pools, the dense layer and the stem); NEON is the table chosen at load unless DWR_ISA says
otherwise. Skips where the cross compiler or qemu is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "csrc" / "engine"
SOURCES = ["tests/neon_vs_portable.cpp", "conv.cpp", "pack.cpp", "float_conv.cpp",
           "dispatch.cpp", "threads.cpp", "kernels/portable.cpp", "kernels/neon.cpp",
           "kernels/avx2.cpp", "kernels/avx512.cpp"]  # fmt: skip
CXX, QEMU = "aarch64-linux-gnu-g++", "qemu-aarch64"


def test_neon_matches_portable_under_qemu(tmp_path):
    missing = [tool for tool in (CXX, QEMU) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (Debian: g++-aarch64-linux-gnu qemu-user)")
    exe = tmp_path / "neon_vs_portable"
    flags = ["-std=c++17", "-O2", "-static", "-ffp-contract=off", "-pthread"]
    cmd = [CXX, *flags, f"-I{ENGINE}", *(str(ENGINE / s) for s in SOURCES), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "DWR_ISA"}
    run = subprocess.run([QEMU, str(exe), "600"], capture_output=True, text=True, timeout=300,
                         env=env)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "table at load: neon" in run.stdout  # chosen from HWCAP
    assert "600 conv, 600 pack, 600 pool, 600 dense cases bit-identical" in run.stdout
    forced = subprocess.run([QEMU, str(exe), "1"], capture_output=True, text=True, timeout=60,
                            env={**env, "DWR_ISA": "portable"})  # fmt: skip
    assert "table at load: portable" in forced.stdout, forced.stdout + forced.stderr
