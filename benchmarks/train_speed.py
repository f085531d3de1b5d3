"""Training images/s: ``dwr train``'s own path against a minimal eager loop, side by side.

For each model, on the device chosen (CUDA when present, else the CPU), in one process:

- ``eager loop``: written here as the baseline a user would write first: the training images
  on the device, a per-image random crop and flip there, autocast (bf16 on CUDA), SGD;
- ``dwr``: :func:`dwr.train.train` itself (Lightning, the recipe, checkpoints every epoch),
  eager and, with ``--compile``, ``torch.compile``d (``--compile-mode``).

Both train the binary backbone on random images of its input size (speed does not depend on
the pixels). ``dwr``'s figure is the best epoch after the first (the first compiles and warms
up), each epoch timed from its first batch to its end, validation of 256 images included.

    python benchmarks/train_speed.py [--models resnet20_cifar resnet18_cifar birealnet18]
        [--batch-size 256] [--steps 40] [--epochs 3] [--compile [MODE ...]]
        [--time-limit S] [--json train_speed.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import dwr

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
START = time.perf_counter()


def synthetic_bundle(spec, n_train: int, n_val: int, device_note: str):
    """A tensor data set of random uint8 images of the spec's input size (CIFAR-style
    augmentation: 4-pixel crops and flips)."""
    from dwr.data.bundle import DataBundle, TensorSplit

    c, h, w = spec.input_size
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorSplit:
        images = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)
        return TensorSplit(images, torch.randint(0, spec.num_classes, (n,), generator=g))

    return DataBundle(
        name=f"random-{h}px ({device_note})",
        num_classes=spec.num_classes,
        input_size=(c, h, w),
        class_names=[str(i) for i in range(spec.num_classes)],
        splits={"train": split(n_train), "val": split(n_val), "test": split(n_val)},
        mean=MEAN,
        std=STD,
        augment={"pad": 4, "flip": True},
    )


def eager_loop(spec, data, device: torch.device, batch: int, steps: int, warmup: int) -> float:
    """Images/s of the minimal loop: data on the device, per-image crop + flip there."""
    torch.manual_seed(0)
    model = dwr.build(spec).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    split = data.splits["train"]
    images, labels = split.images.to(device), split.labels.to(device)
    mean = torch.tensor(MEAN, device=device).view(1, -1, 1, 1)
    std = torch.tensor(STD, device=device).view(1, -1, 1, 1)
    n, _, h, w = images.shape
    dtype = torch.bfloat16 if device.type == "cuda" else None

    def step(i: int) -> None:
        idx = torch.randint(0, n, (batch,), device=device)
        x = F.pad(images[idx], (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (2, batch), device=device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
        x = x.gather(2, rows.expand(-1, x.shape[1], -1, x.shape[3]))
        x = x.gather(3, cols.expand(-1, x.shape[1], h, -1))
        flip = torch.rand(batch, device=device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = (x.float() / 255 - mean) / std
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(i)
    _sync(device)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(device)
    return batch * steps / (time.perf_counter() - t)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def dwr_train(spec, data, device, batch: int, steps: int, epochs: int, compile_mode) -> float:
    """Images/s of ``dwr.train.train`` (best epoch after the first, from metrics.csv)."""
    from dwr.train import train

    overrides = {
        "epochs": epochs,
        "batch_size": batch,
        "eval_batch_size": 256,
        "train_batches": steps,
        "optimizer": "sgd",
        "lr": 0.01,
    }
    if compile_mode:
        overrides.update(compile=True, compile_mode=compile_mode)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train(spec, data, run, overrides=overrides, quiet=True, accelerator=accelerator)
        with open(run / "metrics.csv") as f:
            rates = [float(r["images_per_s"]) for r in csv.DictReader(f)]
    return max(rates[1:] or rates)


def measure(name: str, args, device: torch.device, modes: list[str]) -> list[dict]:
    """The eager loop and dwr (eager) when ``modes`` is empty, else dwr compiled per mode."""
    spec = dwr.get_spec(name)
    steps = args.steps if device.type == "cuda" else max(2, args.steps // 10)
    data = synthetic_bundle(spec, args.batch_size * steps, 256, device.type)
    rows = []

    def record(path: str, ips: float) -> None:
        row = {"model": name, "path": path, "device": device.type, "batch_size": args.batch_size}
        rows.append({**row, "images_per_s": round(ips, 1)})
        print(f"  {name:16s} {path:24s} {ips:10.1f} img/s", file=sys.stderr, flush=True)

    if not modes:
        record("eager loop", eager_loop(spec, data, device, args.batch_size, steps, args.warmup))
        record("dwr", dwr_train(spec, data, device, args.batch_size, steps, args.epochs, None))
    for mode in modes:
        if time.perf_counter() - START > args.time_limit:
            print(f"  {name}: compiled ({mode}) skipped: past --time-limit", file=sys.stderr)
            continue
        ips = dwr_train(spec, data, device, args.batch_size, steps, args.epochs, mode)
        record(f"dwr compiled ({mode})", ips)
    return rows


def add_ratios(rows: list[dict]) -> None:
    """Each row's images/s over its model's eager loop's."""
    base = {r["model"]: r["images_per_s"] for r in rows if r["path"] == "eager loop"}
    for r in rows:
        r["vs_eager_loop"] = round(r["images_per_s"] / base[r["model"]], 2)


def print_table(rows: list[dict]) -> None:
    header = f"{'model':16s} {'device':6s} {'path':28s} {'img/s':>10s} {'vs eager':>9s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:16s} {r['device']:6s} {r['path']:28s} {r['images_per_s']:10.1f} "
            f"{r['vs_eager_loop']:8.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--models", nargs="+", default=["resnet20_cifar", "resnet18_cifar", "birealnet18"]
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=40, help="timed steps per epoch (CPU: a tenth)")
    p.add_argument("--warmup", type=int, default=5, help="eager loop steps before timing")
    p.add_argument("--epochs", type=int, default=3, help="dwr epochs (the first is not counted)")
    p.add_argument(
        "--compile",
        nargs="*",
        metavar="MODE",
        help="also time dwr torch.compiled in these modes (none given: default)",
    )
    p.add_argument(
        "--time-limit", type=float, default=1e9, help="seconds after which no compile starts"
    )
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default="train_speed.json", help="where to write the results")
    args = p.parse_args(argv)
    if args.compile == []:
        args.compile = ["default"]
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    rows: list[dict] = []
    passes = [(name, []) for name in args.models]  # every model eager first, then compiled
    passes += [(name, [mode]) for mode in args.compile or [] for name in args.models]
    for name, modes in passes:
        rows += measure(name, args, device, modes)
        add_ratios(rows)
        write_json(args.json, rows, device)  # as they come: a killed run keeps what it measured
    gpu = f", {torch.cuda.get_device_name(0)}" if cuda else ""
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}{gpu}")
    print_table(rows)
    print(f"wrote {args.json}")
    return 0


def write_json(path: str, rows: list[dict], device: torch.device) -> None:
    meta = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
    }
    Path(path).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
