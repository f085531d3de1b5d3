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


def test_threads_share_out_chunks_with_the_same_logits(monkeypatch):
    """With two threads and several chunks, each thread runs whole chunks ("images"): the
    logits equal the one-thread run's and the per-layer split's ("pixels") bit for bit, in
    the batch's order, for an uneven number of chunks too."""
    from dwr.engine import _kernels

    comp = engine.convert(random_model("resnet20_cifar"))
    x = np.random.default_rng(1).standard_normal((7, 3, 32, 32)).astype(np.float32)
    monkeypatch.setattr(compiled, "CHUNK_BYTES", 2 * 4 * 16 * 32 * 32)  # chunks of 2, 2, 2, 1
    comp._chunks.clear()
    one = comp(x)
    used: list[int] = []
    run_chunks = comp._run_by_image
    monkeypatch.setattr(comp, "_run_by_image", lambda *a: used.append(a[-1]) or run_chunks(*a))
    try:
        _kernels.set_num_threads(2)
        comp.batch_split = "images"
        np.testing.assert_array_equal(comp(x), one)
        assert used == [2]  # it took the by-image path, on two threads
        comp.batch_split = "pixels"
        np.testing.assert_array_equal(comp(x), one)
        assert used == [2]
        assert _kernels.get_num_threads() == 2  # the caller's thread was never left serial
    finally:
        _kernels.set_num_threads(1)


def test_a_serial_thread_runs_its_tasks_itself():
    import threading

    from dwr.engine import _kernels

    _kernels.set_num_threads(2)
    seen: list[int] = []

    def probe():
        _kernels.set_thread_serial(True)
        seen.append(_kernels.get_num_threads())
        seen.append(_kernels.check_pool(200, 7))  # every task still runs exactly once
        _kernels.set_thread_serial(False)
        seen.append(_kernels.get_num_threads())

    try:
        t = threading.Thread(target=probe)
        t.start()
        t.join(timeout=60)
        assert not t.is_alive() and seen == [1, 0, 2]
        assert _kernels.get_num_threads() == 2  # other threads are not affected
    finally:
        _kernels.set_num_threads(1)
