"""Decoding a user's image file: the one decoder of ``dwr predict`` and the ImageFolder reader.

- Only a regular file is opened (:func:`dwr.files.open_regular`): a FIFO is refused at once.
- Sizes are bounded before a pixel is decoded: the source by Pillow's decompression-bomb
  limit, and the resized image too (its shorter side scaled to ``resize``, each side at most
  :data:`MAX_RESIZED_SIDE`): a 1,000,000 x 1 PNG is a few hundred bytes but would resize to
  256,000,000 x 256.
- Every image arrives with 8 bits per channel, scaled, never clipped: 16-bit pixels
  (``I;16*``, and ``I`` from a PNG, which holds at most 16 bits) are divided by 257; float
  pixels (``F``) in [0, 1] are multiplied by 255; 32-bit integers of other formats and
  floats outside [0, 1] have no known range and are refused.
- Any failure is a :class:`DwrError` naming the file: Pillow's plugins raise many types on
  hostile files (``NotImplementedError``, ``OSError``, ``ValueError``, ``struct.error``...).

Only NumPy and Pillow are needed (a deployed runtime has no PyTorch).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from dwr.errors import DwrError
from dwr.files import open_regular
from dwr.limits import MAX_INPUT_SIDE

#: The largest side of an image after its shorter side is resized.
MAX_RESIZED_SIDE = MAX_INPUT_SIDE
#: Pillow modes of 16-bit unsigned pixels.
MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def decode_image(path: str | os.PathLike, mode: str, resize: int | None = None) -> Any:
    """The image at ``path`` as a Pillow image in ``mode`` (``"RGB"`` or ``"L"``), 8 bits per
    channel. ``resize``: the shorter side it will be resized to, for the size bound."""
    from PIL import Image

    where = os.fspath(path)
    try:
        with open_regular(where, "") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a plugin's notes on a damaged file: one line only
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                check_resized_size(where, img.size, resize)
                img.load()
                return to_8bit(img, where).convert(mode)
    except DwrError:
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile file can make a plugin raise anything
        raise DwrError(f"{where}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """What went wrong, in words, for one of Pillow's (or the OS's) exceptions."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"the image is implausibly large ({exc})"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(exc, OSError):  # unreadable, truncated or a decoder error
        return f"cannot read the image ({exc.strerror or str(exc) or type(exc).__name__})"
    if isinstance(exc, MemoryError):
        return "the image does not fit in memory"
    return f"cannot decode the image ({type(exc).__name__}: {str(exc)[:200]})"


def check_resized_size(where: str, size: tuple[int, int], resize: int | None) -> None:
    """Refuse an empty image, or one whose shorter side scaled to ``resize`` makes the other
    side longer than :data:`MAX_RESIZED_SIDE` (read from the header: nothing decoded yet)."""
    w, h = size
    if w < 1 or h < 1:
        raise DwrError(f"{where}: the image is empty ({w}x{h} pixels)")
    if resize is None:
        return
    scale = resize / min(w, h)
    nw, nh = round(w * scale), round(h * scale)
    if max(nw, nh) > MAX_RESIZED_SIDE:
        raise DwrError(
            f"{where}: a {w}x{h} image would be resized to {nw}x{nh} (shorter side {resize}); "
            f"at most {MAX_RESIZED_SIDE} pixels a side are accepted: crop it first"
        )


def to_8bit(img: Any, where: str = "image") -> Any:
    """``img`` with 8 bits per channel, scaled from 16-bit or [0, 1] float pixels (see the
    module docstring); :class:`DwrError` for pixels of unknown range."""
    from PIL import Image

    if img.mode in MODES_16BIT or (img.mode == "I" and img.format == "PNG"):
        x = np.asarray(img).astype(np.float64)
        if x.min() < 0 or x.max() > 65535:  # "I" from a PNG holds 16 bits; refuse if not
            raise DwrError(f"{where}: 16-bit image with pixels outside [0, 65535]")
        return Image.fromarray(np.round(x / 257.0).astype(np.uint8))
    if img.mode == "I":
        raise DwrError(
            f"{where}: 32-bit integer pixels have no known range; save the image with 8 or 16 "
            "bits per channel"
        )
    if img.mode == "F":
        x = np.asarray(img, dtype=np.float64)
        if not np.isfinite(x).all():
            raise DwrError(f"{where}: the image holds NaN or infinite pixel values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise DwrError(
                f"{where}: floating-point pixels in [{lo:g}, {hi:g}]; dwr reads float images "
                "in [0, 1] only: rescale it or save it with 8 bits per channel"
            )
        return Image.fromarray(np.round(x * 255.0).astype(np.uint8))
    return img
