"""Fuzzed engine files: loading and then running them fails only with DwrError.

CI runs a few hundred iterations; ``DWR_FUZZ_ITERATIONS=5000`` makes it the measurement of
issue #11 (``python tests/engine/engine_fuzz.py 5000`` prints the same counts as JSON).
"""

from __future__ import annotations

import os

import pytest
from engine_fuzz import fuzz, saved_models


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return saved_models(tmp_path_factory.mktemp("fuzz"))


def test_fuzzed_files_fail_only_with_dwr_errors(files):
    n = int(os.environ.get("DWR_FUZZ_ITERATIONS", "300"))
    result = fuzz(files, n, seed=int(os.environ.get("DWR_FUZZ_SEED", "0")))
    assert result.other_exceptions == 0, result.examples
    # the mutations exercise both outcomes: refused files, and files that load and run
    assert result.refused_at_load > n // 4
    assert result.loaded > n // 10 and result.inference_ok > 0
    assert result.inferences == 2 * result.loaded


def test_the_fuzzed_models_cover_every_op_and_shortcut(files):
    """A new op kind or shortcut needs a model in engine_fuzz.saved_models."""
    import dwr.engine as engine
    from dwr.engine.ops import OP_TYPES, SHORTCUTS

    ops = [op for f in files for op in engine.load(f).ops]
    assert {op.kind for op in ops} == set(OP_TYPES)
    assert {op.shortcut for op in ops if hasattr(op, "shortcut")} == set(SHORTCUTS)
    assert any(getattr(op, "out", "") == "bits" for op in ops)
