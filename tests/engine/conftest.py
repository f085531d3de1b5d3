"""Fixtures shared by the engine's kernel tests: the kernel path and the thread count."""

from __future__ import annotations

import pytest

from dwr.engine import _kernels


@pytest.fixture(params=_kernels.isas())
def isa(request):
    """Every kernel table this CPU runs (avx512, avx2, portable), whatever DWR_ISA chose."""
    _kernels.set_isa(request.param)
    yield request.param
    _kernels.set_isa(_kernels.load_isa())


@pytest.fixture
def each_isa():
    """Runs a function under every kernel table this CPU runs: ``{isa: result}``."""

    def run(fn):
        out = {}
        try:
            for name in _kernels.isas():
                _kernels.set_isa(name)
                out[name] = fn()
        finally:
            _kernels.set_isa(_kernels.load_isa())
        return out

    return run


@pytest.fixture(params=[1, 2])
def threads(request):
    _kernels.set_num_threads(request.param)
    yield request.param
    _kernels.set_num_threads(1)
