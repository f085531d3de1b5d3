"""The one image decoder (dwr.images): bit depths scaled to 8 bits or refused, never clipped;
the resized size bounded from the header; a FIFO refused at once; only DwrError escapes."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from PIL import Image

from dwr.engine import Preprocess
from dwr.errors import DwrError
from dwr.images import MAX_RESIZED_SIDE, decode_image

CIFAR = Preprocess((3, 32, 32), 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    """Mid-grey at 16 bits once arrived 99.4% white."""
    ramp = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)  # 0, 257, ... 65535
    p = _save(tmp_path / "ramp16.png", ramp)
    assert Image.open(p).mode in ("I;16", "I")
    got = np.asarray(decode_image(p, "L"))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.arange(256, dtype=np.uint8).reshape(16, 16))
    assert np.asarray(decode_image(p, "RGB")).shape == (16, 16, 3)


def test_16bit_grey_predicts_like_its_8bit_twin(tmp_path):
    grey8 = _save(tmp_path / "g8.png", np.full((40, 40), 128, np.uint8))
    grey16 = _save(tmp_path / "g16.png", np.full((40, 40), 128 * 257, np.uint16))
    np.testing.assert_array_equal(CIFAR.load(grey16), CIFAR.load(grey8))


def test_float_tiff_in_unit_range_is_scaled(tmp_path):
    x = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    p = _save(tmp_path / "f.tif", x)
    assert Image.open(p).mode == "F"
    np.testing.assert_array_equal(
        np.asarray(decode_image(p, "L")), np.round(x.astype(np.float64) * 255).astype(np.uint8)
    )


@pytest.mark.parametrize(
    "array,needle",
    [
        (np.full((8, 8), 300.0, np.float32), r"floating-point pixels in \[300, 300\]"),
        (np.full((8, 8), -0.5, np.float32), "in \\[0, 1\\] only"),
        (np.array([[np.nan, 0.5]], np.float32), "NaN or infinite"),
        (np.full((8, 8), 100_000, np.int32), "32-bit integer pixels have no known range"),
    ],
)
def test_pixels_of_unknown_range_are_refused(tmp_path, array, needle):
    p = _save(tmp_path / "x.tif", array)
    with pytest.raises(DwrError, match=needle):
        decode_image(p, "RGB")
    with pytest.raises(DwrError, match=needle):
        CIFAR.load(p)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [(1_000_000, 1), (1, 100_000)])
def test_a_tiny_file_that_resizes_to_gigapixels_is_refused_from_its_header(tmp_path, size):
    """A 1,049-byte 1,000,000 x 1 PNG once took 5.2 GB and 16 s in dwr predict."""
    p = tmp_path / "line.png"
    Image.new("L", size).save(p)
    assert p.stat().st_size < 5000
    with pytest.raises(DwrError, match=f"at most {MAX_RESIZED_SIDE} pixels a side"):
        CIFAR.load(p)
    with pytest.raises(DwrError, match="would be resized to"):
        decode_image(p, "RGB", resize=256)


def test_the_size_bound_lets_ordinary_shapes_through(tmp_path):
    p = tmp_path / "wide.png"
    Image.new("RGB", (1000, 40)).save(p)  # 800 x 32 after the resize
    assert CIFAR.load(p).shape == (3, 32, 32)


@pytest.mark.timeout(30)
def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(DwrError, match="x.png: a FIFO, not a regular file"):
        CIFAR.load(fifo)


def dds_unknown_flags(path):
    """A DDS file Pillow identifies and then fails on with NotImplementedError."""
    hdr = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + b"\0" * 44
    pf = struct.pack("<8I", 32, 0x80000, 0, 32, 0, 0, 0, 0)
    caps = struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    path.write_bytes(b"DDS " + hdr + pf + caps + b"\0" * 64)
    return path


def test_any_decoder_failure_is_a_dwr_error(tmp_path):
    p = dds_unknown_flags(tmp_path / "x.dds")
    with pytest.raises(NotImplementedError):  # what Pillow itself raises
        Image.open(p).load()
    with pytest.raises(DwrError, match="cannot decode the image \\(NotImplementedError"):
        CIFAR.load(p)
