"""``digits``: scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 10 classes).

Each 8x8 image (grey levels 0..16) is scaled to 0..255, upsampled bilinearly to 32x32 and
replicated to 3 channels, so every CIFAR backbone runs on it unchanged. The train/test split is
fixed and stratified (20% test, ``random_state=0``), independent of any training seed.
Augmentation: random 32x32 crops of the image padded by 2 pixels (no flips: digits are not
mirror-symmetric).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dwr.data.bundle import DataBundle, TensorSplit

TEST_FRACTION = 0.2


def _to_images(flat: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(flat, dtype=torch.float32).view(-1, 1, 8, 8) * (255.0 / 16.0)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def load_digits() -> tuple[TensorSplit, TensorSplit]:
    """(train, test) splits of the digits set as uint8 3x32x32 tensors."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    idx = np.arange(len(d.target))
    tr, te = train_test_split(idx, test_size=TEST_FRACTION, random_state=0, stratify=d.target)
    images = _to_images(d.data)
    labels = torch.as_tensor(d.target, dtype=torch.long)
    tr_t, te_t = torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(te))
    return TensorSplit(images[tr_t], labels[tr_t]), TensorSplit(images[te_t], labels[te_t])


def digits_bundle() -> DataBundle:
    train, test = load_digits()
    x = train.images.float() / 255.0
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in x.std(dim=(0, 2, 3)))
    return DataBundle(
        name="digits",
        num_classes=10,
        input_size=(3, 32, 32),
        class_names=[str(i) for i in range(10)],
        splits={"train": train, "test": test},
        mean=mean,
        std=std,
        augment={"pad": 2, "flip": False},
    )
