"""Saving and loading engines, and every kind of bad input: a clear DwrError, never a crash."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
import torch
from engine_helpers import random_model
from torch import nn

import dwr.engine as engine
from dwr.engine.compiled import _PREFIX, FORMAT_VERSION, MAGIC, CompiledModel
from dwr.errors import DwrError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = random_model("vgg_small_cifar_dwr", seed=4)
    comp = engine.convert(model)
    path = tmp_path_factory.mktemp("eng") / "m.dwre"
    comp.save(path)
    return comp, path


def _repack(header: dict, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    h = json.dumps(header).encode()
    digest = hashlib.sha256(h + payload).digest()
    return _PREFIX.pack(MAGIC, version, 0, len(h), len(payload), digest) + h + payload


def _split(blob: bytes) -> tuple[dict, bytes]:
    _, _, _, hlen, _, _ = _PREFIX.unpack_from(blob)
    body = blob[_PREFIX.size :]
    return json.loads(body[:hlen]), body[hlen:]


def test_roundtrip_gives_identical_logits(saved):
    comp, path = saved
    back = engine.load(path)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(back(x), comp(x), rtol=0, atol=0)
    assert back.spec == comp.spec
    assert [op.kind for op in back.ops] == [op.kind for op in comp.ops]


def test_roundtrip_every_op_kind(tmp_path):
    for name in ("reactnet18_dwr", "resnet20_cifar", "resnet18_cifar_dwr"):
        comp = engine.convert(random_model(name))
        comp.save(tmp_path / "m.dwre")
        side = 64 if name.startswith("react") else 32
        x = torch.randn(2, 3, side, side)
        torch.testing.assert_close(engine.load(tmp_path / "m.dwre")(x), comp(x), rtol=0, atol=0)


def test_truncated_files(saved, tmp_path):
    _, path = saved
    blob = path.read_bytes()
    for n in [0, 1, 7, 8, _PREFIX.size - 1, _PREFIX.size, _PREFIX.size + 10, len(blob) - 1]:
        (tmp_path / "t").write_bytes(blob[:n])
        with pytest.raises(DwrError, match="not a valid dwr engine file"):
            engine.load(tmp_path / "t")


def test_corrupted_bytes_fail_the_checksum(saved, tmp_path):
    _, path = saved
    blob = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(_PREFIX.size, len(blob), 20):
        bad = bytearray(blob)
        bad[pos] ^= 0x5A
        (tmp_path / "c").write_bytes(bytes(bad))
        with pytest.raises(DwrError, match="checksum"):
            engine.load(tmp_path / "c")
    bad = bytearray(blob)
    bad[:8] = b"NOTDWR!!"
    (tmp_path / "m").write_bytes(bytes(bad))
    with pytest.raises(DwrError, match="magic"):
        engine.load(tmp_path / "m")


def test_newer_format_version(saved, tmp_path):
    _, path = saved
    header, payload = _split(path.read_bytes())
    (tmp_path / "v").write_bytes(_repack(header, payload, FORMAT_VERSION + 1))
    with pytest.raises(DwrError, match="newer dwr"):
        engine.load(tmp_path / "v")


def test_format_1_files_load_with_row_weights(saved, tmp_path):
    """Format 1 stored binary weights as zero-padded rows; they are converted to lanes."""
    comp, path = saved
    header, payload = _split(path.read_bytes())
    payload = bytearray(payload)
    for entry in header["ops"]:
        if entry["kind"] != "binary_conv":
            continue
        desc = entry["arrays"]["wbits"]
        g, k, _ = desc["shape"]
        lanes = np.frombuffer(bytes(payload), "<u8", g * k * 4, desc["offset"]).reshape(g, k, 4)
        rows = np.zeros((4 * g, (k + 3) // 4 * 4), "<u8")
        rows[:, :k] = lanes.transpose(0, 2, 1).reshape(4 * g, k)
        entry["arrays"]["wbits"] = {
            "dtype": "uint64",
            "shape": [*rows.shape],
            "offset": len(payload),
        }
        payload += rows.tobytes()
    (tmp_path / "v1").write_bytes(_repack(header, bytes(payload), 1))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(engine.load(tmp_path / "v1")(x), comp(x), rtol=0, atol=0)


def test_missing_file(tmp_path):
    with pytest.raises(DwrError, match="cannot read"):
        engine.load(tmp_path / "nope.dwre")


def test_junk_blobs_are_refused():
    for junk in (b"", b"\0" * 200, MAGIC + struct.pack("<I", 1) + bytes(100)):
        with pytest.raises(DwrError):
            CompiledModel.from_bytes(junk)


def test_fuzzed_payload_is_caught(saved):
    _, path = saved
    header, payload = _split(path.read_bytes())
    rng = np.random.default_rng(3)
    for cut in rng.integers(0, len(payload), 10):
        with pytest.raises(DwrError):
            CompiledModel.from_bytes(_repack(header, payload[:cut]))


@pytest.fixture(scope="module")
def small():
    return engine.convert(random_model("resnet20_cifar"))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros((1, 3, 32, 32), np.float64), "float32"),
        (np.zeros((1, 3, 32, 32), np.int32), "float32"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.float16), "float32"),
        (np.zeros((3, 32, 32), np.float32), "4-D"),
        (torch.zeros(1, 32, 32, 3), "channels"),
        (np.zeros((0, 3, 32, 32), np.float32), "non-empty"),
        ([[1.0]], "numpy array or torch tensor"),
    ],
)
def test_bad_input(small, x, match):
    with pytest.raises(DwrError, match=match):
        small(x)


def test_too_small_input():
    comp = engine.convert(random_model("vgg_small_cifar"))
    with pytest.raises(DwrError, match="too small"):
        comp(np.zeros((1, 3, 4, 32), np.float32))


def test_unsupported_layer_is_named():
    model = random_model("resnet20_cifar")
    model.stages[1][2] = nn.Conv2d(32, 32, 3, padding=1)
    with pytest.raises(DwrError, match=r"Conv2d at 'stages\.1\.2'"):
        engine.convert(model)
    model = random_model("birealnet18")
    model.stages[0][1].act = nn.ReLU()
    with pytest.raises(DwrError, match=r"ReLU at 'stages\.0\.1\.act'"):
        engine.convert(model)
    model = random_model("vgg_small_cifar")
    model.stages[0][1] = nn.AvgPool2d(2)
    with pytest.raises(DwrError, match=r"AvgPool2d at 'stages\.0\.1'"):
        engine.convert(model)


def test_float_twin_and_foreign_modules_are_refused():
    with pytest.raises(DwrError, match="full-precision"):
        engine.convert(random_model("resnet20_cifar", binary=False))
    with pytest.raises(DwrError, match="dwr backbones"):
        engine.convert(nn.Sequential(nn.Conv2d(3, 8, 3)))


def test_threads_must_be_positive():
    with pytest.raises(DwrError):
        engine.set_num_threads(0)
