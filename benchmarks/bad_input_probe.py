"""The bad-input probe of issue 24: every case runs the real ``dwr`` in a subprocess, as a user
would, and is sorted into one outcome:

- ``clean``: refused with exit 2 and exactly one ``dwr: error:`` line, or (for inputs that are
  valid but unusual: a 16-bit PNG) the right answer with exit 0; and no input was destroyed;
- ``hang``: no exit within the timeout (a FIFO read blocks forever);
- ``internal``: exit 1, ``internal error`` or a traceback;
- ``wrong``: exit 0 on bad input, a destroyed input, a wrong prediction, invalid JSON, a
  left-over temporary file, a garbled message, or a refusal that came only after the work;
- ``other``: anything else (several lines, an unexpected exit code).

It is a script, not a test: it measures the CLI before and after a change (run it on the old
code and the new), prints one line per case and a JSON summary. The test suite holds each case
as a row of tests/cli/test_bad_input_matrix.py and friends.

    python benchmarks/bad_input_probe.py [--fuzz N] [--only WORD]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TIMEOUT_S = 60
#: Address space of a predict subprocess (the engine runtime needs no torch): an image that
#: asks for more fails inside this limit instead of taking the machine down.
PREDICT_AS_BYTES = 8 * 2**30
TINY = ["--depths", "1", "1", "1", "--widths", "8", "8", "8"]


@dataclass
class Case:
    """One probe: ``argv`` of ``dwr``, whether it must succeed, and an extra check."""

    name: str
    argv: list[str]
    succeed: bool = False
    check: Any = None  # (code, out, err) -> str | None: why the answer is wrong
    env: dict[str, str] = field(default_factory=dict)
    limit_as: bool = False
    max_cpu_s: float | None = None


@dataclass
class Result:
    name: str
    outcome: str
    code: int | None
    seconds: float
    maxrss_mb: float
    detail: str


# -- fixtures ---------------------------------------------------------------------------------
def dwr(argv: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run ``dwr`` for a fixture; its stdout, or SystemExit with its stderr."""
    p = subprocess.run(
        [sys.executable, "-m", "dwr.cli.main", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if p.returncode != 0:
        raise SystemExit(f"fixture dwr {' '.join(argv)} failed:\n{p.stderr}")
    return p.stdout


def tiny_checkpoint(path: Path, dataset: str = "cifar10", num_classes: int = 10) -> Path:
    import torch

    import dwr
    from dwr.backbones import build
    from dwr.train.checkpoint import seal

    spec = dwr.get_spec(
        "resnet20_cifar", depths=[1, 1, 1], widths=[8, 8, 8], num_classes=num_classes
    )
    sd = build(spec).state_dict()
    ckpt = {
        "dwr": {"format": 1, "spec": spec.to_dict(), "epoch": 1, "dataset": dataset},
        "state_dict": {f"model.{k}": v for k, v in sd.items()},
    }
    torch.save(seal(ckpt), path)
    return path


class _Payload:
    def __reduce__(self):
        return (print, ("planted code ran",))


def malicious_checkpoint(path: Path) -> Path:
    import torch

    torch.save({"dwr": {"format": 1}, "state_dict": {}, "x": _Payload()}, path)
    return path


def dds_unknown_flags(path: Path) -> Path:
    """A DDS file Pillow opens far enough to fail with NotImplementedError."""
    hdr = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + b"\0" * 44
    pf = struct.pack("<8I", 32, 0x80000, 0, 32, 0, 0, 0, 0)
    caps = struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    path.write_bytes(b"DDS " + hdr + pf + caps + b"\0" * 64)
    return path


def nan_engine_file(src: Path, dst: Path) -> Path:
    """``src`` with a NaN in its first float32 array, re-signed (a valid checksum)."""
    import hashlib

    from dwr.engine.compiled import _PREFIX, MAGIC

    blob = src.read_bytes()
    _, version, _, hlen, _, _ = _PREFIX.unpack_from(blob)
    body = blob[_PREFIX.size :]
    header, payload = json.loads(body[:hlen]), bytearray(body[hlen:])
    desc = next(a for op in header["ops"] for a in op["arrays"].values() if a["dtype"] == "float32")
    payload[desc["offset"] : desc["offset"] + 4] = struct.pack("<f", float("nan"))
    h = json.dumps(header).encode()
    digest = hashlib.sha256(h + payload).digest()
    dst.write_bytes(_PREFIX.pack(MAGIC, version, 0, len(h), len(payload), digest) + h + payload)
    return dst


NAN_MODULE = """
import math
import dwr


def make():
    model = dwr.create_model("resnet20_cifar", depths=[1, 1, 1], widths=[8, 8, 8]).eval()
    next(model.parameters()).data.view(-1)[0] = math.nan
    return model
"""


def cifar10(root: Path, n: int = 40) -> Path:
    """A small CIFAR-10 directory in the official pickle format."""
    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [f"c{i}".encode() for i in range(10)]
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f)
    for name in ("data_batch_1", "test_batch"):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [i % 10 for i in range(n)]}, f)
    return root


def images(d: Path) -> dict[str, Path]:
    from PIL import Image

    d.mkdir()
    rng = np.random.default_rng(0)
    out = {}
    out["good"] = d / "good.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(out["good"])
    out["grey8"] = d / "grey8.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(out["grey8"])
    out["grey16"] = d / "grey16.png"
    Image.fromarray(np.full((32, 32), 128 * 257, np.uint16)).save(out["grey16"])
    out["float"] = d / "float.tif"
    Image.fromarray(np.full((32, 32), 128 / 255, np.float32)).save(out["float"])
    out["int32"] = d / "int32.tif"
    Image.fromarray(np.full((32, 32), 128 * 257, np.int32)).save(out["int32"])
    out["wide"] = d / "wide.png"
    Image.new("L", (1_000_000, 1)).save(out["wide"])
    out["tall"] = d / "tall.png"
    Image.new("L", (1, 100_000)).save(out["tall"])
    out["dds"] = dds_unknown_flags(d / "dds.png")
    out["fifo"] = d / "fifo.png"
    os.mkfifo(out["fifo"])
    out["fifo_yaml"] = d / "recipe.yaml"
    os.mkfifo(out["fifo_yaml"])
    return out


def latency_tables(root: Path, good: dict) -> dict[str, dict[str, str]]:
    """XDG_CACHE_HOME per damaged table (the table of this machine, then one change)."""
    variants = {
        "no-head": lambda t: t.pop("head"),
        "head-empty": lambda t: t.__setitem__("head", []),
        "ms-nan": lambda t: t["binary_conv"][0].__setitem__("ms", float("nan")),
        "ms-negative": lambda t: [r.__setitem__("ms", -r["ms"]) for r in t["binary_conv"]],
        "ms-zero": lambda t: [r.__setitem__("ms", 0.0) for r in t["float_conv"]],
        "call-inf": lambda t: t.__setitem__("call_ms", float("inf")),
    }
    out = {}
    for name, change in variants.items():
        t = json.loads(json.dumps(good))
        change(t)
        cache = root / f"cache-{name}"
        (cache / "dwr" / "latency").mkdir(parents=True)
        (cache / "dwr" / "latency" / good["_file"]).write_text(json.dumps(t))
        out[name] = {"XDG_CACHE_HOME": str(cache)}
    return out


# -- checks -----------------------------------------------------------------------------------
def top_label(out: str) -> list:
    """Each image's (index, score) pairs, scores to 5 places: a random model's top label
    alone could agree on a white and a grey image by chance."""
    rows = [json.loads(line)["top_k"] for line in out.splitlines() if line.strip()]
    return [[(t["index"], round(t["score"], 5)) for t in row] for row in rows]


def same_as(reference: list, refusal_ok: bool = False):
    """The prediction of the 8-bit twin image (or, if ``refusal_ok``, a refusal)."""

    def check(code, out, err):
        if refusal_ok and code == 2:
            return None
        got = top_label(out) if code == 0 else None
        return None if got == reference else f"predicted {got}, the 8-bit image gives {reference}"

    return check


def intact(path: Path, kind: str = "file", digest: bytes | None = None):
    """The input at ``path`` still exists as it was."""
    import stat

    def check(code, out, err):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return f"{path.name} is gone"
        if kind == "fifo" and not stat.S_ISFIFO(st.st_mode):
            return f"the FIFO {path.name} was replaced"
        if kind == "chr" and not stat.S_ISCHR(st.st_mode):
            return f"the device node {path.name} was replaced"
        if digest is not None and path.read_bytes() != digest:
            return f"{path.name} was overwritten"
        return None

    return check


def no_match(directory: Path, pattern: str):
    def check(code, out, err):
        left = sorted(p.name for p in directory.glob(pattern))
        return f"left behind {left}" if left else None

    return check


def not_garbled(code, out, err):
    return "choose another the directory" if "choose another the" in err else None


def valid_json(code, out, err):
    if code != 0:
        return None
    try:
        for line in out.splitlines():
            if line.strip():
                json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError as exc:
        return f"invalid JSON ({exc})"
    return None


def all_of(*checks):
    def check(code, out, err):
        for c in checks:
            why = c(code, out, err)
            if why:
                return why
        return None

    return check


def batch_goes_on(n_good: int):
    """One line per good image, one error line for the bad one, exit 2."""

    def check(code, out, err):
        lines = [x for x in out.splitlines() if x.strip()]
        errs = [x for x in err.splitlines() if x.strip()]
        if code == 2 and len(lines) == n_good and len(errs) == 1 and "internal" not in err:
            return None
        return f"exit {code}, {len(lines)} predictions of {n_good}, {len(errs)} error lines"

    return check


# -- running ----------------------------------------------------------------------------------
def run_case(case: Case) -> Result:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **case.env}

    def limits() -> None:
        if case.limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (PREDICT_AS_BYTES, PREDICT_AS_BYTES))

    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-m", "dwr.cli.main", *case.argv],
            env=env,
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            preexec_fn=limits,
            start_new_session=True,
        )
        timer = threading.Timer(TIMEOUT_S, lambda: os.killpg(p.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(p.pid, 0)
        timer.cancel()
        code = os.waitstatus_to_exitcode(status)
        p.returncode = code
        o.seek(0)
        e.seek(0)
        out, err = o.read().decode(errors="replace"), e.read().decode(errors="replace")
    seconds = time.perf_counter() - t0
    cpu = usage.ru_utime + usage.ru_stime
    rss = usage.ru_maxrss / 1024
    outcome, detail = classify(case, code, out, err, cpu, rss)
    return Result(case.name, outcome, code, round(seconds, 1), round(rss), detail)


def classify(case: Case, code: int, out: str, err: str, cpu: float, rss: float):
    lines = [x for x in err.splitlines() if x.strip()]
    first = lines[0][:160] if lines else ""
    if code == -signal.SIGKILL:
        return "hang", f"no exit within {TIMEOUT_S} s"
    if code == 1 or "internal error" in err or "Traceback" in err:
        return "internal", first
    why = case.check(code, out, err) if case.check else None
    if why:
        return "wrong", why[:200]
    if rss > 2048:
        return "wrong", f"used {rss:.0f} MB ({first})"
    if case.max_cpu_s is not None and cpu > case.max_cpu_s:
        return "wrong", f"refused only after {cpu:.0f} CPU s ({first})"
    if case.succeed:
        return ("clean", "right answer") if code == 0 else ("other", f"exit {code}: {first}")
    if code == 0:
        return "wrong", "exit 0 on bad input"
    if code == 2 and len(lines) == 1 and lines[0].startswith("dwr: error: "):
        return "clean", first
    if code == 2 and case.check is not None and not case.succeed and "error" in err:
        return "clean", first  # a batch: one line per bad file (checked by case.check)
    return "other", f"exit {code}, {len(lines)} lines: {first}"


def build_cases(root: Path) -> list[Case]:
    ck = tiny_checkpoint(root / "tiny.ckpt")
    eng = root / "tiny.dwre"
    dwr(["convert", str(ck), "-o", str(eng), "--repeats", "1"])
    img = images(root / "img")
    ref = top_label(dwr(["predict", str(eng), str(img["grey8"]), "--json", "--top-k", "10"]))
    ck_bytes = ck.read_bytes()
    fifo = root / "out.fifo"
    os.mkfifo(fifo)
    dev = root / "null-node"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a char device like /dev/null, here
    own = {}  # each case that may destroy its input gets a copy of its own
    for name in ("same", "link", "hard", "export"):
        own[name] = root / f"own-{name}.ckpt"
        own[name].write_bytes(ck_bytes)
    (root / "link.dwre").symlink_to(own["link"])
    os.link(own["hard"], root / "hard.ckpt")
    # a place no one can write, root included (permissions do not stop root)
    rofs = Path("/proc") if os.geteuid() == 0 else root / "rofs"
    if rofs != Path("/proc"):
        rofs.mkdir()
        os.chmod(rofs, 0o555)
    cifar = root / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in ("batches.meta", "data_batch_1", "test_batch"):
        os.mkfifo(cifar / name)
    imgf = root / "imgf"
    for split in ("train", "val"):
        (imgf / split / "a").mkdir(parents=True)
        (imgf / split / "b").mkdir(parents=True)
        for c in "ab":
            for i in range(2):
                (imgf / split / c / f"{i}.png").write_bytes(img["good"].read_bytes())
    os.mkfifo(imgf / "val" / "a" / "9.png")
    imgd = root / "imgf_dds"
    for split in ("train", "val"):
        for c in "ab":
            (imgd / split / c).mkdir(parents=True)
            for i in range(2):
                (imgd / split / c / f"{i}.png").write_bytes(img["good"].read_bytes())
    (imgd / "val" / "a" / "1.png").write_bytes(img["dds"].read_bytes())
    mal = malicious_checkpoint(root / "planted.ckpt")
    (root / "nanmod.py").write_text(NAN_MODULE)
    nan_eng = nan_engine_file(eng, root / "nan.dwre")
    stale_dir = root / "stale"
    stale_dir.mkdir()
    stale = stale_dir / ".m.dwre.ab12cd34.tmp"
    stale.write_bytes(b"x" * 1000)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    prune_dir = root / "prune_out"
    prune_dir.mkdir()
    cache = root / "xdg-good"
    dwr(["profile", "--quick"], env={"XDG_CACHE_HOME": str(cache)})
    table_file = next((cache / "dwr" / "latency").glob("*.json"))
    table = json.loads(table_file.read_text())
    table["_file"] = table_file.name
    tables = latency_tables(root, table)
    py = {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    ok_cifar = cifar10(root / "cifar_ok")
    pred = ["predict", str(eng), "--json", "--top-k", "10"]

    cases = [
        # 1. outputs that are inputs or special files
        Case(
            "convert-o-same-ckpt",
            ["convert", str(own["same"]), "-o", str(own["same"]), "--repeats", "1"],
            check=intact(own["same"], digest=ck_bytes),
        ),
        Case(
            "convert-o-symlink-to-input",
            ["convert", str(own["link"]), "-o", str(root / "link.dwre"), "--repeats", "1"],
            check=intact(own["link"], digest=ck_bytes),
        ),
        Case(
            "convert-o-hardlink-of-input",
            ["convert", str(root / "hard.ckpt"), "-o", str(own["hard"]), "--repeats", "1"],
            check=intact(own["hard"], digest=ck_bytes),
        ),
        Case(
            "export-o-input-ckpt",
            ["export", str(own["export"]), "-o", str(own["export"])],
            check=intact(own["export"], digest=ck_bytes),
        ),
        Case(
            "convert-o-fifo",
            ["convert", str(ck), "-o", str(fifo), "--repeats", "1"],
            check=intact(fifo, "fifo"),
        ),
        Case("export-o-fifo", ["export", str(ck), "-o", str(fifo)], check=intact(fifo, "fifo")),
        Case(
            "convert-o-device",
            ["convert", str(ck), "-o", str(dev), "--repeats", "1"],
            check=intact(dev, "chr"),
        ),
        Case("export-o-device", ["export", str(ck), "-o", str(dev)], check=intact(dev, "chr")),
        Case(
            "convert-o-rofs-message",
            ["convert", str(ck), "-o", str(rofs / "dwr-probe-m.dwre"), "--repeats", "1"],
            check=not_garbled,
        ),
        Case(
            "profile-out-rofs",
            ["profile", "--out", str(rofs / "dwr-probe-t.json")],
            max_cpu_s=15,
            check=not_garbled,
        ),
        Case(
            "prune-out-leaves-no-lock",
            [
                "prune",
                str(ck),
                "--model",
                "resnet20_cifar",
                "--samples",
                "16",
                "--out",
                str(prune_dir / "p.json"),
                "--dataset",
                "cifar10",
                "--data-dir",
                str(ok_cifar),
            ],
            succeed=True,
            check=no_match(prune_dir, ".lock"),
        ),
        # 2. reads that block on a FIFO
        Case("predict-image-fifo", [*pred, str(img["fifo"])]),
        Case(
            "convert-class-names-fifo",
            [
                "convert",
                str(ck),
                "-o",
                str(root / "cn.dwre"),
                "--class-names",
                str(img["fifo"]),
                "--repeats",
                "1",
            ],
        ),
        Case(
            "train-recipe-fifo",
            [
                "train",
                "--model",
                "resnet20_cifar",
                *TINY,
                "--recipe",
                str(img["fifo_yaml"]),
                "--epochs",
                "1",
                "--out",
                str(root / "tr_fifo"),
                "--quiet",
            ],
        ),
        Case(
            "train-cifar-fifo",
            [
                "train",
                "--model",
                "resnet20_cifar",
                *TINY,
                "--dataset",
                "cifar10",
                "--data-dir",
                str(root / "cifar"),
                "--epochs",
                "1",
                "--out",
                str(root / "tr_cifar"),
                "--quiet",
            ],
        ),
        Case(
            "eval-imagefolder-fifo",
            [
                "eval",
                str(tiny_checkpoint(root / "imgf.ckpt", "imagefolder", 2)),
                "--dataset",
                "imagefolder",
                "--data-dir",
                str(imgf),
                "--batch-size",
                "2",
            ],
        ),
        # 3. tiny files, huge resized images
        Case("predict-png-1000000x1", [*pred, str(img["wide"])], limit_as=True, max_cpu_s=10),
        Case("predict-png-1x100000", [*pred, str(img["tall"])], limit_as=True, max_cpu_s=10),
        # 4. wrong answers with exit 0
        Case(
            "predict-png-16bit-grey", [*pred, str(img["grey16"])], succeed=True, check=same_as(ref)
        ),
        Case(
            "predict-tiff-float-grey", [*pred, str(img["float"])], succeed=True, check=same_as(ref)
        ),
        Case("predict-tiff-int32", [*pred, str(img["int32"])], check=same_as(ref, True)),
        Case(
            "convert-nan-weights",
            [
                "convert",
                "nanmod:make",
                "-o",
                str(root / "nanmod.dwre"),
                "--input-size",
                "3",
                "32",
                "32",
                "--repeats",
                "1",
            ],
            env=py,
        ),
        Case(
            "predict-engine-nan",
            ["predict", str(nan_eng), str(img["good"]), "--json"],
            check=valid_json,
        ),
        # 5. one bad image in a batch
        Case(
            "predict-dds-batch1",
            [
                "predict",
                str(eng),
                str(img["good"]),
                str(img["dds"]),
                str(img["grey8"]),
                "--batch",
                "1",
            ],
            check=batch_goes_on(2),
        ),
        Case(
            "eval-imagefolder-dds",
            [
                "eval",
                str(root / "imgf.ckpt"),
                "--dataset",
                "imagefolder",
                "--data-dir",
                str(imgd),
                "--batch-size",
                "2",
            ],
        ),
        # 6. damaged latency tables
        *[
            Case(f"summary-latency-{n}", ["summary", "resnet20_cifar", "--latency"], env=e)
            for n, e in tables.items()
        ],
        *[
            Case(
                f"prune-latency-{n}",
                [
                    "prune",
                    str(ck),
                    "--model",
                    "resnet20_cifar",
                    "--budget-metric",
                    "latency",
                    "--samples",
                    "16",
                    "--dataset",
                    "cifar10",
                    "--data-dir",
                    str(ok_cifar),
                ],
                env=e,
            )
            for n, e in list(tables.items())[:3]
        ],
        # 7. temporary files
        Case(
            "convert-sweeps-stale-tmp",
            ["convert", str(ck), "-o", str(stale_dir / "m.dwre"), "--repeats", "1"],
            succeed=True,
            check=no_match(stale_dir, ".m.dwre.*.tmp"),
        ),
        # 8. a malicious checkpoint
        Case(
            "eval-malicious-ckpt",
            ["eval", str(mal)],
            check=lambda c, o, e: None if "may be malicious" in e else "not called malicious",
        ),
        Case(
            "convert-malicious-ckpt",
            ["convert", str(mal), "-o", str(root / "mal.dwre")],
            check=lambda c, o, e: None if "may be malicious" in e else "not called malicious",
        ),
        # 9. unbounded options
        Case(
            "export-batch-1e22",
            ["export", str(ck), "-o", str(root / "b.onnx"), "--batch", "99999999999999999999999"],
        ),
        Case(
            "export-batch-1e12",
            ["export", str(ck), "-o", str(root / "b.onnx"), "--batch", "1000000000000"],
        ),
        Case(
            "export-size-1e12",
            ["export", str(ck), "-o", str(root / "s.onnx"), "--size", "1000000000000"],
        ),
        Case(
            "prune-min-samples-1e9",
            [
                "prune",
                str(ck),
                "--model",
                "resnet20_cifar",
                "--min-samples",
                "1000000000",
                "--samples",
                "16",
                "--dataset",
                "cifar10",
                "--data-dir",
                str(ok_cifar),
            ],
        ),
    ]
    return cases


def sigterm_case(root: Path) -> Result:
    """SIGTERM while ``convert`` writes: no ``.NAME.XXXX.tmp`` may stay behind."""
    ck = root / "tiny.ckpt"
    out_dir = root / "sigterm"
    out_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    seen = 0
    for _ in range(5):
        p = subprocess.Popen(
            [sys.executable, "-m", "dwr.cli.main", "convert", "birealnet18", "-o",
             str(out_dir / "big.dwre"), "--repeats", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while p.poll() is None:
            if any(out_dir.glob(".big.dwre.*.tmp")):
                p.send_signal(signal.SIGTERM)
                seen += 1
                break
        p.wait()
        left = sorted(x.name for x in out_dir.glob(".big.dwre.*.tmp"))
        if left:
            return Result("convert-sigterm-tmp", "wrong", p.returncode, 0, 0, f"left {left}")
        if seen:
            break
    del ck
    if not seen:
        return Result("convert-sigterm-tmp", "other", None, 0, 0, "never caught the write")
    return Result("convert-sigterm-tmp", "clean", p.returncode, 0, 0, "no temp file left")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="cases whose name contains this")
    ap.add_argument("--fuzz", type=int, default=0, help="also fuzz predict N times")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dwr-probe-") as tmp:
        root = Path(tmp)
        cases = [c for c in build_cases(root) if not args.only or args.only in c.name]
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_case, cases))
        if not args.only or args.only in "convert-sigterm-tmp":
            results.append(sigterm_case(root))
        if (root / "rofs").exists():
            os.chmod(root / "rofs", 0o755)
        for r in results:
            print(f"{r.outcome:9s} {r.name:32s} exit {r.code!s:4s} {r.seconds:6.1f}s "
                  f"{r.maxrss_mb:6.0f}MB  {r.detail}")  # fmt: skip
        summary: dict[str, Any] = {"cases": len(results), **Counter(r.outcome for r in results)}
        if args.fuzz:
            summary["fuzz"] = fuzz_predict(root, args.fuzz)
    print(json.dumps(summary))
    return 0


def fuzz_predict(root: Path, n: int) -> dict[str, Any]:
    """The predict fuzzer of the test suite (tests/engine/image_fuzz.py), n mutations."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "engine"))
    try:
        from image_fuzz import fuzz_images
    except ImportError:
        return {"error": "tests/engine/image_fuzz.py is missing"}
    return fuzz_images(root / "tiny.dwre", n, seed=0).to_dict()


if __name__ == "__main__":
    sys.exit(main())
