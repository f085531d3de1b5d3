"""CIFAR-10 / CIFAR-100 in the official Python (pickle) format, held in memory as uint8.

CIFAR-10 directory (``cifar-10-batches-py``): ``data_batch_*``, ``test_batch``,
``batches.meta``. CIFAR-100 directory (``cifar-100-python``): ``train``, ``test``, ``meta``.
Each batch is a pickled dict whose ``data`` is an (N, 3072) uint8 array of 3x32x32 images
stored channel-major, with ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100).

The batches are read with :class:`SafeUnpickler`, which allows only the types the format uses,
so a malicious "data" file cannot run code.

Training augmentation (batched): random crop with 4-pixel padding and horizontal flips.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dwr.data.bundle import DataBundle, TensorSplit
from dwr.errors import DwrError
from dwr.files import open_regular


@dataclass(frozen=True)
class CifarInfo:
    name: str
    folder: str
    train_files: tuple[str, ...] | None  # None: every data_batch_* present
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    url: str
    md5: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR = {
    "cifar10": CifarInfo(
        "cifar10",
        "cifar-10-batches-py",
        None,
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "cifar100": CifarInfo(
        "cifar100",
        "cifar-100-python",
        ("train",),
        "test",
        "meta",
        b"fine_labels",
        b"fine_label_names",
        100,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
}


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _numpy_core(sub: str):
    try:
        return importlib.import_module(f"numpy._core.{sub}")  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        return importlib.import_module(f"numpy.core.{sub}")


#: Everything a CIFAR pickle (from Python 2 or 3, any protocol) refers to: NumPy's array and
#: scalar reconstructors, and ``_codecs.encode`` (how protocol 2 stores bytes).
_ALLOWED = {
    (f"numpy.{core}.{sub}", name): (sub, name)
    for core in ("core", "_core")
    for sub, name in (
        ("multiarray", "_reconstruct"),
        ("multiarray", "scalar"),
        ("numeric", "_frombuffer"),
    )
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR format holds: dicts, lists, tuples, bytes, str, numbers
    and NumPy arrays and scalars. Any other class or function (``os.system``, ``eval``, ...)
    raises :class:`pickle.UnpicklingError` before anything runs: a data file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            sub, attr = _ALLOWED[module, name]
            return getattr(_numpy_core(sub), attr)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def safe_load(f) -> object:
    """:class:`SafeUnpickler` on a binary file, bytes decoded as Python 2 wrote them."""
    return SafeUnpickler(f, encoding="bytes").load()


def _unpickle(path: Path) -> dict:
    try:
        with open_regular(path, "CIFAR file") as f:
            obj = safe_load(f)
    except FileNotFoundError:
        raise DwrError(f"missing CIFAR file {path}") from None
    except DwrError:  # not a regular file
        raise
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("it refers to"):
            raise DwrError(
                f"refusing CIFAR file {path}: {exc}, which a CIFAR batch never holds (the "
                "file may be malicious); replace it with the official data"
            ) from None
        raise DwrError(
            f"corrupted CIFAR file {path} (UnpicklingError: {exc}); "
            "delete the directory and download it again (--download)"
        ) from None
    except Exception as exc:  # bad pickle, truncated file, wrong encoding
        raise DwrError(
            f"corrupted CIFAR file {path} ({type(exc).__name__}: {exc}); "
            "delete the directory and download it again (--download)"
        ) from None
    if not isinstance(obj, dict):
        raise DwrError(f"corrupted CIFAR file {path}: expected a pickled dict")
    return obj


def _read_batch(path: Path, info: CifarInfo) -> tuple[torch.Tensor, torch.Tensor]:
    d = _unpickle(path)
    if b"data" not in d or info.label_key not in d:
        keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in d)
        raise DwrError(
            f"corrupted CIFAR file {path}: it lacks 'data' or '{info.label_key.decode()}' "
            f"(has {keys}); is this a {info.name} batch?"
        )
    data = d[b"data"]
    if not isinstance(data, np.ndarray):
        raise DwrError(
            f"corrupted CIFAR file {path}: 'data' should be a uint8 array, got "
            f"{type(data).__name__}"
        )
    labels = _labels(path, d[info.label_key], info)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DwrError(
            f"corrupted CIFAR file {path}: 'data' should be uint8 N x 3072, "
            f"got {data.dtype} {data.shape}"
        )
    if len(labels) != len(data) or (
        len(labels) and not 0 <= labels.min() <= labels.max() < info.num_classes
    ):
        raise DwrError(f"corrupted CIFAR file {path}: labels do not match the images")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def _labels(path: Path, raw: object, info: CifarInfo) -> np.ndarray:
    """The labels as int64, or a DwrError if they are not a flat list of integers."""
    ok = isinstance(raw, list | tuple) and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in raw
    )
    if isinstance(raw, np.ndarray) and raw.ndim == 1 and np.issubdtype(raw.dtype, np.integer):
        ok = True
    if not ok:
        kind = type(raw).__name__
        sample = next(iter(raw), None) if isinstance(raw, list | tuple | np.ndarray) else None
        what = f"{kind} of {type(sample).__name__}" if sample is not None else kind
        raise DwrError(
            f"corrupted CIFAR file {path}: '{info.label_key.decode()}' should be a list of "
            f"integer labels, got a {what}"
        )
    return np.asarray(raw, dtype=np.int64)


def default_root() -> Path:
    """``$DWR_DATA`` or ``~/.cache/dwr/data``."""
    return Path(os.environ.get("DWR_DATA", Path.home() / ".cache" / "dwr" / "data"))


def find_dir(info: CifarInfo, root: Path) -> Path | None:
    """``root`` itself or ``root/<official folder>``, whichever holds the meta file."""
    for cand in (root, root / info.folder):
        if (cand / info.meta_file).exists():
            return cand
    return None


def download(info: CifarInfo, root: Path) -> None:
    """Fetch the official archive into ``root``, check its md5, extract it."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / info.url.rsplit("/", 1)[1]
    if not archive.exists():
        part = archive.with_suffix(".part")
        try:
            with urllib.request.urlopen(info.url, timeout=60) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f)
        except (urllib.error.URLError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise DwrError(
                f"could not download {info.url} ({exc}); without a network, download it "
                f"elsewhere and extract it so that {root / info.folder} holds the batches"
            ) from None
        os.replace(part, archive)
    got = md5sum(archive)
    if got != info.md5:
        raise DwrError(
            f"corrupted download {archive}: md5 {got} != {info.md5}; delete it and retry"
        )
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise DwrError(f"corrupted archive {archive} ({exc}); delete it and retry") from None


def cifar_bundle(name: str, root: str | os.PathLike | None, download_: bool) -> DataBundle:
    info = CIFAR[name]
    base = Path(root) if root is not None else default_root()
    folder = find_dir(info, base)
    if folder is None and download_:
        download(info, base)
        folder = find_dir(info, base)
    if folder is None:
        raise DwrError(
            f"no {name} data at {base}: expected {base / info.folder}/{info.meta_file} "
            f"(the official Python-format directory from {info.url}); place it there, "
            "give its location with --data-dir, or pass --download"
        )
    train_files = (
        [folder / f for f in info.train_files]
        if info.train_files
        else sorted(folder.glob("data_batch_*"))
    )
    if not train_files:
        raise DwrError(f"incomplete {name} directory {folder}: no data_batch_* files")
    for f in [*train_files, folder / info.test_file]:
        if not f.exists():
            raise DwrError(f"incomplete {name} directory {folder}: missing {f.name}")
    meta = _unpickle(folder / info.meta_file)
    if info.names_key not in meta:
        raise DwrError(
            f"corrupted CIFAR file {folder / info.meta_file}: no {info.names_key.decode()!r}"
        )
    names = meta[info.names_key]
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise DwrError(
            f"corrupted CIFAR file {folder / info.meta_file}: "
            f"{info.names_key.decode()!r} should be a list of names"
        )
    class_names = [n.decode(errors="replace") if isinstance(n, bytes) else n for n in names]
    parts = [_read_batch(f, info) for f in train_files]
    train = TensorSplit(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    test = TensorSplit(*_read_batch(folder / info.test_file, info))
    return DataBundle(
        name=name,
        num_classes=info.num_classes,
        input_size=(3, 32, 32),
        class_names=class_names,
        splits={"train": train, "test": test},
        mean=info.mean,
        std=info.std,
        augment={"pad": 4, "flip": True},
        root=str(folder),
    )
