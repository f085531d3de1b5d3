"""Fixtures shared by the engine's kernel tests: the kernel path and the thread count."""

from __future__ import annotations

import pytest

from dwr.engine import _kernels


@pytest.fixture(params=["native", "portable"])
def isa(request):
    """The run-time kernel (AVX2 here) and the portable one."""
    _kernels.force_portable(request.param == "portable")
    yield request.param
    _kernels.force_portable(False)


@pytest.fixture(params=[1, 2])
def threads(request):
    _kernels.set_num_threads(request.param)
    yield request.param
    _kernels.set_num_threads(1)
