"""The loader's guards before the first inference: geometry, absurd header numbers, special
files, atomic saves, thread counts and non-finite inputs all give a DwrError."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
from engine_fuzz import repack, split
from engine_helpers import random_model

import dwr.engine as engine
import dwr.engine.compiled as compiled
from dwr.engine.compiled import CompiledModel
from dwr.errors import DwrError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    comp = engine.convert(random_model("resnet20_cifar"))
    path = tmp_path_factory.mktemp("guards") / "r20.dwre"
    comp.save(path)
    return comp, path


def _first(header: dict, shortcut: str) -> dict:
    return next(op for op in header["ops"] if op["meta"].get("shortcut") == shortcut)


@pytest.mark.parametrize(
    "shortcut, key, value",
    [
        ("identity", "pad", 0),  # conv output 30x30, residual 32x32
        ("zero_pad", "sc_stride", 1),  # residual at full size, conv output halved
        ("zero_pad", "stride", 1),
        ("zero_pad", "pad", 2),
    ],
)
def test_shortcut_geometry_is_checked_at_load(saved, shortcut, key, value):
    header, payload = split(saved[1].read_bytes())
    _first(header, shortcut)["meta"][key] = value
    with pytest.raises(DwrError, match="shortcut .* does not match the conv's output"):
        CompiledModel.from_bytes(repack(header, payload))


def test_channel_chain_is_checked_at_load(saved):
    header, payload = split(saved[1].read_bytes())
    op = _first(header, "zero_pad")
    op["meta"]["in_channels"] += 1
    with pytest.raises(DwrError, match="not a valid dwr engine file"):
        CompiledModel.from_bytes(repack(header, payload))


@pytest.mark.parametrize(
    "text_edit",
    [
        lambda t: t.replace('"depths": [3, 3, 3]', '"depths": [Infinity, 3, 3]'),
        lambda t: t.replace('"depths": [3, 3, 3]', '"depths": [NaN, 3, 3]'),
        lambda t: t.replace('"depths": [3, 3, 3]', '"depths": [1e400, 3, 3]'),
        lambda t: t.replace('"depths": [3, 3, 3]', '"depths": [' + "9" * 5000 + ", 3, 3]"),
        lambda t: t.replace('"pad": 1', '"pad": 1e999', 1),
        lambda t: "[" * 100_000 + "]" * 100_000,
    ],
)
def test_absurd_header_numbers(saved, text_edit):
    header, payload = split(saved[1].read_bytes())
    text = text_edit(json.dumps(header))
    assert text != json.dumps(header)
    with pytest.raises(DwrError, match="not a valid dwr engine file"):
        CompiledModel.from_bytes(repack(text, payload))


def test_array_dtype_must_be_the_ops_own(saved):
    header, payload = split(saved[1].read_bytes())
    header["ops"][1]["arrays"]["wbits"]["dtype"] = "float32"
    with pytest.raises(DwrError, match="'wbits' has dtype float32"):
        CompiledModel.from_bytes(repack(header, payload))


def test_special_files_are_refused_unread(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for reading would block forever
    for path, match in [
        ("/dev/zero", "not a regular file"),
        (fifo, "not a regular file"),
        (tmp_path, "not a regular file"),
        (tmp_path / "missing.dwre", "cannot read engine file"),
    ]:
        with pytest.raises(DwrError, match=match):
            engine.load(path)


def test_implausibly_large_file_is_refused(saved, monkeypatch):
    monkeypatch.setattr(compiled, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DwrError, match="implausibly large"):
        engine.load(saved[1])


def test_save_is_atomic_and_errors_are_clean(saved, tmp_path):
    comp, path = saved
    target = tmp_path / "m.dwre"
    comp.save(target)
    before = target.read_bytes()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DwrError, match="cannot write"):
        comp.save(blocker / "m.dwre")  # a path under a file
    with pytest.raises(DwrError, match="cannot write"):
        comp.save(tmp_path)  # a directory
    readonly = tmp_path / "ro"
    readonly.mkdir()
    os.chmod(readonly, stat.S_IRUSR | stat.S_IXUSR)
    try:
        if not os.access(readonly, os.W_OK):  # root can write anywhere
            with pytest.raises(DwrError, match="cannot write"):
                comp.save(readonly / "m.dwre")
    finally:
        os.chmod(readonly, stat.S_IRWXU)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m.dwre", "ro"]


def test_failed_save_keeps_the_old_file(saved, tmp_path, monkeypatch):
    comp, _ = saved
    target = tmp_path / "m.dwre"
    comp.save(target)
    before = target.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(DwrError, match="No space left"):
        comp.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.dwre"]


@pytest.mark.parametrize("n", [0, -1, 10**12, 2**31 - 1, 257, 1.5, 2.0, "2", True, None])
def test_thread_counts_are_validated(n):
    with pytest.raises(DwrError, match="threads must be a whole number from 1 to 256"):
        engine.set_num_threads(n)


def test_numpy_integer_thread_counts_work():
    engine.set_num_threads(np.int64(2))
    engine.set_num_threads(1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused(saved, bad):
    comp, _ = saved
    x = np.zeros((2, 3, 32, 32), np.float32)
    x[1, 2, 5, 7] = bad
    with pytest.raises(DwrError, match="NaN or infinite"):
        comp(x)
    with pytest.raises(DwrError, match="NaN or infinite"):
        comp(torch.from_numpy(x))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("array", ["w", "scale", "bias"])
def test_non_finite_weights_in_a_file_are_refused(saved, value, array):
    """A file with a valid checksum but a NaN weight once loaded and printed ``nan`` scores."""
    import struct

    header, payload = split(saved[1].read_bytes())
    payload = bytearray(payload)
    desc = next(op["arrays"][array] for op in header["ops"] if array in op["arrays"])
    payload[desc["offset"] : desc["offset"] + 4] = struct.pack("<f", value)
    with pytest.raises(DwrError, match=f"{array} holds NaN or infinite values"):
        CompiledModel.from_bytes(repack(header, bytes(payload)))
    CompiledModel.from_bytes(repack(header, split(saved[1].read_bytes())[1]))  # the control


@pytest.mark.parametrize("where", ["stem", "binary"])
def test_a_model_with_non_finite_weights_is_not_converted(where):
    """A NaN in a binary conv's latent weights would vanish in its sign: the module itself is
    checked, before compiling."""
    model = random_model("resnet20_cifar")
    name, param = next(
        (n, p)
        for n, p in model.named_parameters()
        if ("stem" in n) == (where == "stem") and p.dim() == 4
    )
    with torch.no_grad():
        param.view(-1)[0] = float("nan")
    with pytest.raises(DwrError, match=f"the model: {name} holds NaN"):
        engine.convert(model)
