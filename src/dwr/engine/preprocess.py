"""How an image becomes a model's input, stored in the engine file (format 3) beside the plan.

An image is decoded (:mod:`dwr.images`: 8 bits per channel, sizes bounded), converted to the
model's channels (grey, palette and RGBA images become RGB), its shorter side resized to
``resize`` (bilinear), centre-cropped to ``H x W``, scaled to ``[0, 1]`` and normalised per
channel, ``(x - mean) / std``: the evaluation transform of :mod:`dwr.data` (ImageFolder:
resize 256, crop 224; CIFAR and digits: 32, 32).
Only NumPy (and Pillow when decoding) is needed, so a deployed runtime needs no PyTorch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from dwr.errors import DwrError

#: The largest input side accepted from a file (an engine runs far smaller inputs).
MAX_SIDE = 8192


@dataclass(frozen=True)
class Preprocess:
    """``input_size`` (C, H, W), the shorter side ``resize`` before the centre crop, and the
    per-channel ``mean`` and ``std`` of the ``[0, 1]`` pixel values."""

    input_size: tuple[int, int, int]
    resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        size = self.input_size
        if len(size) != 3 or not all(_is_int(v) and 1 <= v <= MAX_SIDE for v in size):
            raise DwrError(f"preprocessing: bad input size {list(size)!r}")
        if size[0] not in (1, 3):
            raise DwrError(f"preprocessing: images have 1 or 3 channels, not {size[0]}")
        if not (_is_int(self.resize) and min(size[1:]) <= self.resize <= MAX_SIDE):
            raise DwrError(f"preprocessing: bad resize {self.resize!r} for input {list(size)}")
        for what, vals, low in (("mean", self.mean, -math.inf), ("std", self.std, 0.0)):
            ok = len(vals) == size[0] and all(_is_num(v) and v > low for v in vals)
            if not ok:
                raise DwrError(f"preprocessing: bad {what} {list(vals)!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Preprocess:
        if not isinstance(d, dict) or set(d) != {"input_size", "resize", "mean", "std"}:
            raise DwrError("preprocessing must have input_size, resize, mean and std")
        lists = [d[k] for k in ("input_size", "mean", "std")]
        if not all(isinstance(v, list) for v in lists):
            raise DwrError("preprocessing: input_size, mean and std must be lists")
        return cls(tuple(d["input_size"]), d["resize"], tuple(d["mean"]), tuple(d["std"]))

    def image(self, img: Any) -> np.ndarray:
        """A Pillow image -> the ``[C, H, W]`` float32 input."""
        from PIL import Image

        from dwr.images import to_8bit

        c, h, w = self.input_size
        img = to_8bit(img).convert("RGB" if c == 3 else "L")
        iw, ih = img.size
        s = self.resize / min(iw, ih)
        nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - w) // 2, (nh - h) // 2
        img = img.crop((left, top, left + w, top + h))
        x = np.asarray(img, dtype=np.float32).reshape(h, w, c) / 255.0
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1), dtype=np.float32)

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """Decode the image file at ``path`` (:func:`dwr.images.decode_image`: 8 bits per
        channel, sizes bounded) and preprocess it; :class:`DwrError` if it cannot be."""
        from dwr.images import decode_image

        return self.image(
            decode_image(path, "RGB" if self.input_size[0] == 3 else "L", self.resize)
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_class_names(names: Any, num_classes: int) -> list[str]:
    """``names`` as a list of ``num_classes`` strings, or :class:`DwrError`."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DwrError("class names must be a list of strings")
    if len(names) != num_classes:
        raise DwrError(f"{len(names)} class names for a classifier of {num_classes} outputs")
    return list(names)
