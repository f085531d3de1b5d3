"""``imagefolder``: ImageNet layout ``ROOT/train/<class>/*.jpg`` and ``ROOT/val/<class>/*.jpg``.

Images are decoded by :func:`dwr.images.decode_image` (8 bits per channel, sizes bounded) in
DataLoader workers. Training: RandomResizedCrop to 224
(area fraction uniform in [0.08, 1], log-uniform aspect ratio in [3/4, 4/3], ten tries then a
centre crop) and a horizontal flip with probability 1/2. Evaluation: resize the short side
to 256, centre crop 224. Both normalise with the ImageNet mean and std.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dwr.data.bundle import DataBundle, FileSplit
from dwr.errors import DwrError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP, RESIZE = 224, 256
SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def _rand() -> float:
    return float(torch.rand(()))  # torch RNG: seeded per DataLoader worker


def random_resized_box(w: int, h: int) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a RandomResizedCrop box inside a ``w x h`` image."""
    area = w * h
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    for _ in range(10):
        target = area * (SCALE[0] + (SCALE[1] - SCALE[0]) * _rand())
        ratio = math.exp(log_lo + (log_hi - log_lo) * _rand())
        cw = round(math.sqrt(target * ratio))
        ch = round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left = int(_rand() * (w - cw + 1))
            top = int(_rand() * (h - ch + 1))
            return left, top, cw, ch
    # Fallback: the largest centred box with the ratio clamped to RATIO.
    r = w / h
    if r < RATIO[0]:
        cw, ch = w, round(w / RATIO[0])
    elif r > RATIO[1]:
        ch, cw = h, round(h * RATIO[1])
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def train_transform(img):
    from PIL import Image

    left, top, cw, ch = random_resized_box(*img.size)
    img = img.resize((CROP, CROP), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    if _rand() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def eval_transform(img):
    from PIL import Image

    w, h = img.size
    s = RESIZE / min(w, h)
    nw, nh = max(CROP, round(w * s)), max(CROP, round(h * s))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - CROP) // 2, (nh - CROP) // 2
    return img.crop((left, top, left + CROP, top + CROP))


class ImageFileDataset(Dataset):
    """Decodes one file per item: (normalised 3x224x224 float tensor, label).

    ``skip_bad`` (evaluation): a file that cannot be decoded does not stop the run; every item
    is ``(image, label, "")``, and a bad file's is ``(zeros, -1, its error message)``."""

    def __init__(self, split: FileSplit, train_transform: bool, mean, std, skip_bad=False) -> None:
        self.split, self.train, self.skip_bad = split, train_transform, skip_bad
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple:
        from dwr.images import decode_image

        path = self.split.paths[i]
        try:
            img = decode_image(path, "RGB", RESIZE)
        except DwrError as exc:
            message = f"cannot decode image {exc}; remove or replace it"
            if self.skip_bad:
                return torch.zeros(3, CROP, CROP), -1, message
            raise DwrError(message) from None
        img = train_transform(img) if self.train else eval_transform(img)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        x = (x.float() / 255.0 - self.mean) / self.std
        return (x, self.split.labels[i], "") if self.skip_bad else (x, self.split.labels[i])


def _scan(folder: Path, classes: list[str] | None) -> tuple[FileSplit, list[str]]:
    if not folder.is_dir():
        raise DwrError(
            f"missing directory {folder}: an ImageFolder root needs train/<class>/*.jpg "
            "and val/<class>/*.jpg"
        )
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if classes is None:
        classes = found
    if not classes:
        raise DwrError(f"no class directories in {folder}; expected {folder}/<class>/*.jpg")
    extra = sorted(set(found) - set(classes))
    if extra:
        raise DwrError(f"{folder} has classes not in train/: {extra[:5]}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        d = folder / name
        if not d.is_dir():
            continue
        for root, _, files in os.walk(d):
            for f in sorted(files):
                if f.lower().endswith(EXTENSIONS):
                    paths.append(str(Path(root) / f))
                    labels.append(label)
    if not paths:
        raise DwrError(
            f"no images in {folder}: expected files ending in {', '.join(EXTENSIONS)} "
            f"under {folder}/<class>/"
        )
    return FileSplit(paths, labels), classes


def imagefolder_bundle(root: str | os.PathLike | None) -> DataBundle:
    if root is None:
        raise DwrError("the imagefolder data set needs a root directory (--data-dir DIR)")
    base = Path(root)
    if not base.is_dir():
        raise DwrError(f"ImageFolder root {base} does not exist")
    train, classes = _scan(base / "train", None)
    val, _ = _scan(base / "val", classes)
    return DataBundle(
        name="imagefolder",
        num_classes=len(classes),
        input_size=(3, CROP, CROP),
        class_names=classes,
        splits={"train": train, "test": val},
        mean=MEAN,
        std=STD,
        root=str(base),
    )
