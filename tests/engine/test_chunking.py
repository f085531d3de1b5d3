"""A batch runs through the op chain in cache-sized chunks, with the same logits as in one pass."""

from __future__ import annotations

import numpy as np
from engine_helpers import random_model

import dwr.engine as engine
import dwr.engine.compiled as compiled


def test_chunk_size_follows_the_largest_activation():
    comp = engine.convert(random_model("resnet18_cifar"))
    # 64 channels at 32x32 in float32 is 256 KiB per image: 4 images fit in 1 MiB
    assert comp.chunk_size(32, 32) == compiled.CHUNK_BYTES // (4 * 64 * 32 * 32)
    assert comp.chunk_size(512, 512) == 1


def test_chunked_batches_equal_one_pass(monkeypatch):
    comp = engine.convert(random_model("resnet20_cifar"))
    x = np.random.default_rng(0).standard_normal((7, 3, 32, 32)).astype(np.float32)
    whole = comp(x)
    monkeypatch.setattr(compiled, "CHUNK_BYTES", 1)  # one image per pass
    comp._chunks.clear()
    assert comp.chunk_size(32, 32) == 1
    np.testing.assert_array_equal(comp(x), whole)
    monkeypatch.setattr(compiled, "CHUNK_BYTES", 3 * 4 * 16 * 32 * 32)  # 3, 3, then 1
    comp._chunks.clear()
    np.testing.assert_array_equal(comp(x), whole)
