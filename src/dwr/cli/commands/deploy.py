"""``dwr convert`` (checkpoint or model name -> engine file) and ``dwr predict`` (classify
images with an engine file or a checkpoint).

``dwr predict model.dwre ...`` never imports PyTorch: the engine runtime needs only NumPy,
Pillow and the compiled kernels. A checkpoint (for either command) needs PyTorch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dwr.cli.options import (
    add_input_size_argument,
    add_stem_precision_argument,
    int_in,
    print_json,
    threads_type,
)
from dwr.errors import DwrError

#: Files a directory argument of ``dwr predict`` is searched for (recursively).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
#: The largest --batch of predict (a batch of 224x224 images and its activations is ~3 MB each).
MAX_PREDICT_BATCH = 1024
#: CIFAR-10's label names (its ``batches.meta``), for checkpoints that did not record them.
CIFAR10_CLASSES = (
    "airplane automobile bird cat deer dog frog horse ship truck".split()  # noqa: SIM905
)
_MAGIC = b"DWRENGN\0"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="compile a checkpoint (or a registered model, random weights) to an engine file",
    )
    p.add_argument(
        "model",
        metavar="CHECKPOINT|NAME|MODULE:CALLABLE",
        help="checkpoint file, registered model, or package.module:callable returning a model",
    )
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="engine file to write")
    p.add_argument("--class-names", metavar="FILE", help="text file with one class name per line")
    p.add_argument("--threads", type=threads_type, default=1, help="threads for the timing (1)")
    p.add_argument(
        "--repeats", type=int_in(1, 10_000, "repeats"), default=20, help="timed runs (20)"
    )
    add_input_size_argument(p)  # for MODULE:CALLABLE models without a spec (3 224 224)
    add_stem_precision_argument(p, "f32")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_convert)

    p = sub.add_parser("predict", help="classify images with an engine file or a checkpoint")
    p.add_argument("model", metavar="MODEL", help="engine file (.dwre) or checkpoint")
    p.add_argument("inputs", metavar="IMAGE|DIR", nargs="+", help="image files or directories")
    p.add_argument(
        "--top-k",
        type=int_in(1, 100_000, "top-k"),
        default=5,
        metavar="K",
        help="labels per image (5)",
    )
    p.add_argument(
        "--batch",
        type=int_in(1, MAX_PREDICT_BATCH, "batch"),
        default=8,
        metavar="B",
        help="images per call (8)",
    )
    p.add_argument(
        "--threads", type=threads_type, default=1, metavar="N", help="engine threads (1)"
    )
    add_stem_precision_argument(p, None)  # a checkpoint's; an engine file keeps its own
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=run_predict)


# -- convert ---------------------------------------------------------------------------------
def _looks_like_path(arg: str) -> bool:
    return os.sep in arg or arg.endswith((".ckpt", ".pt", ".pth"))


def _from_checkpoint(path: str) -> tuple[Any, dict[str, Any]]:
    """The model of a checkpoint and its data description (``ckpt["dwr"]``)."""
    try:
        from dwr.train.checkpoint import load_checkpoint, read_checkpoint
    except ImportError as exc:
        raise DwrError(f"reading checkpoint {path!r} needs PyTorch and Lightning ({exc})") from None
    meta = read_checkpoint(path)["dwr"]
    return load_checkpoint(path), meta if isinstance(meta, dict) else {}


def _from_callable(ref: str) -> Any:
    """The eval-mode model that ``package.module:callable`` (no arguments) returns."""
    import importlib

    from torch import nn

    module_name, _, attr = ref.partition(":")
    try:
        fn: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module is one line
        raise DwrError(f"cannot import {module_name!r} for {ref!r}: {exc}") from None
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise DwrError(f"{ref!r}: {module_name} has no callable {attr!r}")
    try:
        model = fn()
    except Exception as exc:  # noqa: BLE001
        raise DwrError(f"{ref}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise DwrError(f"{ref}() returned {type(model).__name__}, not a torch nn.Module")
    return model.eval()


@dataclass(frozen=True)
class _Shape:
    """What the preprocessing defaults read from a spec, for a model that has none."""

    input_size: tuple[int, int, int]
    num_classes: int

    @property
    def stem(self) -> str:
        return "imagenet" if min(self.input_size[1:]) >= 64 else "cifar"


def _numbers(values: Any, n: int) -> tuple[float, ...] | None:
    if isinstance(values, list) and len(values) == n:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return tuple(float(v) for v in values)
    return None


def data_preprocessing(
    meta: dict[str, Any], spec: Any, input_size: tuple[int, int, int] | None = None
) -> tuple[Any, list[str], str]:
    """``(Preprocess, class names, where they came from)`` for a model trained on the data set
    a checkpoint names (``meta``), or on the data its spec suggests (no ``dataset``). The input
    size is ``input_size`` if given, else the checkpoint's, else the spec's."""
    from dwr.engine import Preprocess

    dataset = meta.get("dataset")
    size = meta.get("input_size")
    if input_size is None:
        input_size = tuple(size) if isinstance(size, list) and len(size) == 3 else spec.input_size
    c, h, w = input_size
    mean, std = _numbers(meta.get("mean"), c), _numbers(meta.get("std"), c)
    resize, source = h, f"data set {dataset}"
    if dataset == "imagefolder" or (dataset is None and spec.stem == "imagenet"):
        from dwr.data.imagefolder import CROP, MEAN, RESIZE, STD

        resize = round(h * RESIZE / CROP)  # shorter side 256 before the 224 crop
        mean, std = mean or MEAN, std or STD
    elif dataset in ("cifar10", "cifar100") or dataset is None:
        from dwr.data.cifar import CIFAR

        info = CIFAR[dataset or "cifar10"]
        mean, std = mean or info.mean, std or info.std
    elif dataset == "digits" and not (mean and std):
        from dwr.data.digits import digits_bundle

        bundle = digits_bundle()
        mean, std = bundle.mean, bundle.std
    if dataset is None:
        source = f"the defaults of {spec.stem} stems (no data set recorded)"
    if mean is None or std is None or len(mean) != c:
        raise DwrError(f"no normalisation known for data set {dataset!r}; retrain with dwr train")
    names = meta.get("class_names")
    if not (isinstance(names, list) and len(names) == spec.num_classes):
        names = [str(i) for i in range(spec.num_classes)]
        if dataset == "cifar10" and spec.num_classes == 10:
            names = list(CIFAR10_CLASSES)
    return Preprocess((c, h, w), max(resize, h, w), tuple(mean), tuple(std)), names, source


def _read_class_names(path: str, num_classes: int) -> list[str]:
    from dwr.files import read_text

    try:
        lines = read_text(path, "--class-names").splitlines()
    except OSError as exc:
        raise DwrError(f"cannot read class names from {path!r}: {exc}") from None
    names = [line.strip() for line in lines if line.strip()]
    if len(names) != num_classes:
        raise DwrError(f"{path} has {len(names)} class names; the model has {num_classes} classes")
    return names


def run_convert(args: argparse.Namespace) -> int:
    from dwr.files import check_output

    check_output(args.out, [args.model, args.class_names], "-o")
    try:
        import torch  # noqa: F401 - compiling needs it (running the file does not)
    except ImportError as exc:
        raise DwrError(f"dwr convert needs PyTorch ({exc}); 'dwr predict' does not") from None
    import numpy as np

    import dwr.engine as engine
    from dwr.backbones import create_model
    from dwr.cost import count_cost
    from dwr.engine.bench import measure

    if os.path.exists(args.model):
        model, meta = _from_checkpoint(args.model)
    elif _looks_like_path(args.model):
        raise DwrError(f"checkpoint {args.model!r} does not exist")
    elif ":" in args.model:
        model, meta = _from_callable(args.model), {}
    else:
        model, meta = create_model(args.model).eval(), {}  # random weights, for benchmarking
    spec = getattr(model, "spec", None)
    size = tuple(args.input_size) if args.input_size else None
    example = None
    if spec is None:  # the front door traces the model on an example input
        import torch

        example = torch.randn(1, *(size or (3, 224, 224)))
        shape = _Shape(tuple(example.shape[1:]), engine.convert(model, example).num_classes)
    else:
        shape = spec
    pre, names, source = data_preprocessing(meta, shape, size)
    if args.class_names:
        names, source = _read_class_names(args.class_names, shape.num_classes), args.class_names
    extra = () if example is None else (example,)
    comp = engine.convert(
        model, *extra, preprocess=pre, class_names=names, stem_precision=args.stem_precision
    )
    comp.save(args.out)
    engine.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((1, *pre.input_size)).astype(np.float32)
    timing = measure(lambda: comp(x), repeats=args.repeats)
    engine.set_num_threads(1)
    try:
        cost = count_cost(model, pre.input_size).totals()
    except DwrError as exc:
        raise DwrError(f"wrote {args.out}, but cannot count the model's cost: {exc}") from None
    result = {
        "out": str(args.out),
        "model": (spec.name or spec.family) if spec else args.model,
        "source": _source(args.model, meta),
        "bytes": os.path.getsize(args.out),
        "format": comp.format_version,
        "stem_precision": comp.stem_precision,
        "preprocess": {**pre.to_dict(), "from": source},
        "classes": len(names),
        "cost": cost,
        "latency_ms": {**timing.to_dict(), "threads": args.threads, "batch": 1},
        "kernel": engine.kernel_isa(),
    }
    if args.json:
        print_json(result)
        return 0
    c, h, w = pre.input_size
    print(
        f"wrote {args.out} ({result['bytes'] / 2**20:.2f} MiB, engine format "
        f"{result['format']}, {comp.stem_precision} stem): {result['model']} from "
        f"{result['source']}"
    )
    print(
        f"input {c}x{h}x{w} (resize {pre.resize}, mean {_fmt_list(pre.mean)}, std "
        f"{_fmt_list(pre.std)}; {source}), {len(names)} classes ({_first_names(names)})"
    )
    if spec is None:  # dwr.cost counts dwr's own binary layers as BOPs, other code as FLOPs
        print("cost as dwr.cost counts it (binary convs not made of dwr layers count as float):")
    print(
        f"cost: BOPs {cost['bops']:.3e}  FLOPs {cost['flops']:.3e}  OPs {cost['ops']:.3e}  "
        f"params {cost['params']:,}  storage {cost['storage_bytes'] / 2**20:.2f} MiB"
    )
    print(
        f"latency: {timing.min_ms:.2f} ms min, {timing.median_ms:.2f} ms median (batch 1, "
        f"{args.threads} thread{'s' if args.threads > 1 else ''}, kernel {result['kernel']})"
    )
    return 0


def _source(arg: str, meta: dict[str, Any]) -> str:
    if meta:
        return "checkpoint"
    return "a Python callable" if ":" in arg else "registered model (random weights)"


def _first_names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _fmt_list(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


# -- predict ---------------------------------------------------------------------------------
def _error(message: str) -> None:
    print(f"dwr: error: {message}", file=sys.stderr)


def load_model(path: str, stem_precision: str | None = None):
    """An engine file, or a checkpoint compiled on the fly (needs PyTorch, stem at
    ``stem_precision``, f32 if None), with its preprocessing; :class:`DwrError` if neither,
    if it records no preprocessing, or if an engine file's stem is not at ``stem_precision``
    (it was fixed when the file was converted)."""
    import dwr.engine as engine

    if not os.path.exists(path):
        raise DwrError(f"model {path!r} does not exist")
    if path.endswith(".dwre") or not os.path.isfile(path) or _has_engine_magic(path):
        comp = engine.load(path)
        if comp.preprocess is None or comp.class_names is None:
            raise DwrError(
                f"{path} records no preprocessing or class names (an engine file of format 2, "
                f"or saved without them); re-create it with 'dwr convert CHECKPOINT -o {path}'"
            )
        if stem_precision not in (None, comp.stem_precision):
            raise DwrError(
                f"{path} was compiled with a stem in {comp.stem_precision}; --stem-precision "
                f"applies to checkpoints (re-create it with 'dwr convert ... --stem-precision "
                f"{stem_precision}')"
            )
        return comp
    model, meta = _from_checkpoint(path)
    pre, names, _ = data_preprocessing(meta, model.spec)
    precision = stem_precision or "f32"
    return engine.convert(model, preprocess=pre, class_names=names, stem_precision=precision)


def _has_engine_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def collect_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Image paths in order (files as given, directories searched for image suffixes) and one
    message per input that yields nothing."""
    paths: list[Path] = []
    problems: list[str] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
            )
            if not found:
                problems.append(
                    f"{arg}: no images in this directory (looked for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            problems.append(f"{arg}: no such file or directory")
    return paths, problems


def _top_k(logits, k: int, names: list[str]) -> list[dict[str, Any]]:
    import numpy as np

    z = logits - logits.max()
    prob = np.exp(z) / np.exp(z).sum()
    order = np.argsort(-prob, kind="stable")[:k]
    return [{"label": names[i], "index": int(i), "score": float(prob[i])} for i in order]


def _progress(total: int, quiet: bool):
    """A rich progress bar on stderr, or a no-op when quiet or not on a terminal."""
    if quiet or total < 2 or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress

    # on a terminal the result lines go through the bar's console, so they do not tear it
    tty_out = sys.stdout.isatty()
    bar = Progress(
        console=Console(stderr=True), transient=True, redirect_stdout=tty_out, redirect_stderr=True
    )
    bar.start()
    return bar, bar.add_task("classifying", total=total)


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    import dwr.engine as engine

    comp = load_model(args.model, args.stem_precision)
    engine.set_num_threads(args.threads)
    pre, names = comp.preprocess, comp.class_names
    k = min(args.top_k, len(names))
    paths, problems = collect_images(args.inputs)
    for message in problems:
        _error(message)
    failed = len(problems)
    progress = _progress(len(paths), args.json)
    try:
        for start in range(0, len(paths), args.batch):
            batch, arrays = [], []
            for path in paths[start : start + args.batch]:
                try:
                    arrays.append(pre.load(path))
                    batch.append(path)
                except DwrError as exc:
                    _error(str(exc))
                    failed += 1
            if arrays:
                logits = comp(np.stack(arrays))
                for path, row in zip(batch, logits, strict=True):
                    if not np.isfinite(row).all():  # never print NaN scores (bad JSON, no answer)
                        _error(f"{path}: the model gives non-finite logits for this image")
                        failed += 1
                        continue
                    _print_prediction(str(path), _top_k(row, k, names), args.json)
            if progress:
                progress[0].advance(progress[1], len(paths[start : start + args.batch]))
    finally:
        if progress:
            progress[0].stop()
        engine.set_num_threads(1)
    return 2 if failed else 0


def _print_prediction(path: str, top: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps({"path": path, "top_k": top}), flush=True)
        return
    labels = "  ".join(f"{t['label']} {_score(t['score'])}" for t in top)
    print(f"{path}  {labels}", flush=True)


def _score(p: float) -> str:
    return f"{p:.3f}" if p >= 1e-3 or p == 0 or not math.isfinite(p) else f"{p:.1e}"
