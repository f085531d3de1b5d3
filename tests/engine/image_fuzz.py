"""A fuzzer for ``dwr predict``'s inputs: mutated image files, decoded and classified.

Each iteration takes one seed image (PNG of every mode, 16-bit PNG, JPEG, BMP, GIF, TIFF of
float and 16-bit pixels, WebP, PPM, ICO, DDS), applies one random mutation (flipped bytes, a
header number overwritten, a cut, an inserted or deleted run of bytes), writes it and runs what
``dwr predict`` runs on it: :meth:`Preprocess.load` then the engine. Only :class:`DwrError`
counts as a clean refusal; any other exception is recorded.

    python tests/engine/image_fuzz.py MODEL.dwre 5000     # the measurement (prints JSON)
"""

from __future__ import annotations

import collections
import io
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dwr.errors import DwrError

#: Numbers written over header fields: sizes, depths and counts at their limits.
NUMBERS = [0, 1, 2, 7, 8, 15, 16, 255, 256, 4095, 65535, 65536, 2**24, 2**31 - 1, 2**32 - 1]


def seed_images() -> dict[str, bytes]:
    """Small valid files of many formats and pixel modes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    images = {
        "rgb.png": (Image.fromarray(rgb), "PNG"),
        "grey.png": (Image.fromarray(grey), "PNG"),
        "grey16.png": (Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
        "rgba.png": (Image.fromarray(rgb).convert("RGBA"), "PNG"),
        "palette.png": (Image.fromarray(rgb).convert("P"), "PNG"),
        "bw.png": (Image.fromarray(grey).convert("1"), "PNG"),
        "rgb.jpg": (Image.fromarray(rgb), "JPEG"),
        "rgb.bmp": (Image.fromarray(rgb), "BMP"),
        "palette.gif": (Image.fromarray(rgb).convert("P"), "GIF"),
        "float.tif": (Image.fromarray(grey.astype(np.float32) / 255), "TIFF"),
        "grey16.tif": (Image.fromarray(grey.astype(np.uint16) * 257), "TIFF"),
        "rgb.webp": (Image.fromarray(rgb), "WEBP"),
        "rgb.ppm": (Image.fromarray(rgb), "PPM"),
        "rgb.ico": (Image.fromarray(rgb), "ICO"),
        "rgb.dds": (Image.fromarray(rgb).convert("RGBA"), "DDS"),
    }
    out = {}
    for name, (img, fmt) in images.items():
        buf = io.BytesIO()
        try:
            img.save(buf, fmt)
        except (OSError, KeyError, ValueError):  # a Pillow built without that codec
            continue
        out[name] = buf.getvalue()
    return out


def mutate(blob: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation of ``blob``, mostly near its header (where decoders branch)."""
    b = bytearray(blob)
    what = int(rng.integers(6))
    head = min(len(b), 128)
    if what == 0:  # flip a few bytes
        for _ in range(int(rng.integers(1, 9))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
    elif what == 1:  # a header number overwritten
        at = int(rng.integers(max(head - 4, 1)))
        n = NUMBERS[int(rng.integers(len(NUMBERS)))]
        order = "<" if rng.random() < 0.5 else ">"
        size = 2 if n < 65536 and rng.random() < 0.5 else 4
        b[at : at + size] = int(n % 256**size).to_bytes(size, "little" if order == "<" else "big")
    elif what == 2:  # cut
        del b[int(rng.integers(len(b))) :]
    elif what == 3:  # insert random bytes
        at = int(rng.integers(len(b) + 1))
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif what == 4:  # delete a run
        at = int(rng.integers(len(b)))
        del b[at : at + int(rng.integers(1, 64))]
    else:  # random bytes over part of the header
        at = int(rng.integers(head))
        n = int(rng.integers(1, 16))
        b[at : at + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(b)


@dataclass
class FuzzResult:
    iterations: int = 0
    refused: int = 0  # DwrError: the clean outcome for a damaged file
    predicted: int = 0  # decoded and classified with finite logits
    other_exceptions: int = 0
    by_type: collections.Counter = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("iterations", "refused", "predicted")}
        return {**d, "other_exceptions": self.other_exceptions, "by_type": dict(self.by_type)}


def fuzz_images(model_path: str | Path, n: int, seed: int = 0) -> FuzzResult:
    """``n`` mutated images through ``model_path``'s preprocessing and engine."""
    import dwr.engine as engine

    comp = engine.load(model_path)
    seeds = seed_images()
    names = sorted(seeds)
    rng = np.random.default_rng(seed)
    result = FuzzResult()
    with tempfile.TemporaryDirectory(prefix="dwr-image-fuzz-") as tmp:
        for i in range(n):
            name = names[int(rng.integers(len(names)))]
            path = Path(tmp) / f"{i}-{name}"
            path.write_bytes(mutate(seeds[name], rng))
            result.iterations += 1
            try:
                logits = comp(comp.preprocess.load(path)[None])
                if not np.isfinite(logits).all():
                    raise AssertionError("non-finite logits")
                result.predicted += 1
            except DwrError:
                result.refused += 1
            except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
                result.other_exceptions += 1
                result.by_type[type(exc).__name__] += 1
                if len(result.examples) < 10:
                    result.examples.append(f"{name} #{i}: {type(exc).__name__}: {exc}"[:300])
            path.unlink()
    return result


if __name__ == "__main__":
    model, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    print(json.dumps(fuzz_images(model, count).to_dict()))
