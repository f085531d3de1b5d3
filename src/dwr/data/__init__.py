"""Data sets served as normalised NCHW batches: ``digits``, ``cifar10``, ``cifar100``,
``imagefolder``.

``load_dataset(name, root, download, val_fraction, seed)`` returns a
:class:`~dwr.data.bundle.DataBundle`; its ``loader(split, batch_size)`` yields
``(float images, int64 labels)``.
"""

from __future__ import annotations

import os

from dwr.data.bundle import DataBundle, carve_val
from dwr.errors import DwrError

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")


def list_datasets() -> list[str]:
    return list(DATASETS)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> DataBundle:
    """Load a data set by name.

    ``val_fraction > 0`` moves a stratified fraction of the training data (chosen by ``seed``)
    into a ``"val"`` split. The ``"test"`` split is the official test/validation set.
    """
    if name == "digits":
        from dwr.data.digits import digits_bundle

        bundle = digits_bundle()
    elif name in ("cifar10", "cifar100"):
        from dwr.data.cifar import cifar_bundle

        bundle = cifar_bundle(name, root, download)
    elif name == "imagefolder":
        from dwr.data.imagefolder import imagefolder_bundle

        bundle = imagefolder_bundle(root)
    else:
        raise DwrError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if not 0 <= val_fraction < 1:
        raise DwrError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction > 0:
        train = bundle.splits["train"]
        bundle.splits = carve_val(bundle.splits, list(train.labels), val_fraction, seed)
    return bundle


__all__ = ["DATASETS", "DataBundle", "list_datasets", "load_dataset"]
