"""Bad input across every command: exit code 2, exactly one line on stderr, no traceback,
and fast (no hang). One row per case of issue #11 at least.

Rows that once hung or allocated absurd sizes run the real ``dwr`` in a subprocess with a
timeout (several at once, to keep the file fast); the others call ``main`` in-process.
"""

from __future__ import annotations

import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from dwr.cli.main import main

#: CPU seconds within which every case must fail: importing torch and scikit-learn takes
#: 2-5 s; the old hangs burned minutes. Wall time on a loaded machine may be far longer, so a
#: subprocess is killed as hung only after ``TIMEOUT_S``.
CPU_LIMIT_S = 20
TIMEOUT_S = 180
TINY = ["--model", "resnet20_cifar", "--depths", "1", "1", "1", "--widths", "8", "8", "8"]
TRAIN = ["train", *TINY, "--epochs", "1", "--batch-size", "16", "--quiet"]


def _spec(**changes):
    import dwr

    return dwr.get_spec("resnet20_cifar", depths=[1, 1, 1], widths=[8, 8, 8], **changes)


def _checkpoint(path: Path, mutate=None, reseal: bool = True, dataset="digits", **spec) -> Path:
    """A dwr checkpoint of the tiny spec; ``mutate(ckpt)`` then optionally a new checksum."""
    from dwr.backbones import build
    from dwr.train.checkpoint import seal

    spec = _spec(**spec)
    sd = build(spec).state_dict()
    ckpt = {
        "dwr": {"format": 1, "spec": spec.to_dict(), "epoch": 1, "dataset": dataset},
        "state_dict": {f"model.{k}": v for k, v in sd.items()},
    }
    seal(ckpt)
    if mutate is not None:
        mutate(ckpt)
        if reseal and isinstance(ckpt.get("dwr"), dict) and isinstance(ckpt["state_dict"], dict):
            seal(ckpt)
    torch.save(ckpt, path)
    return path


def _set_spec(key, value):
    def mutate(ckpt):
        ckpt["dwr"]["spec"][key] = value

    return mutate


def _flip_byte(ckpt):
    w = ckpt["state_dict"]["model.stages.0.0.conv.weight"]
    w.view(-1).view(torch.uint8)[3] ^= 0x40


def _nan_weight(ckpt):
    ckpt["state_dict"]["model.stages.0.0.conv.weight"][0, 0, 0, 0] = math.nan


def _data_writers():
    """tests/data/conftest.py (the CIFAR and ImageFolder writers), loaded by path."""
    import importlib.util

    where = Path(__file__).resolve().parent.parent / "data" / "conftest.py"
    spec = importlib.util.spec_from_file_location("dwr_test_data_writers", where)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """Files every row may name: ``{file}``, ``{dir}``, checkpoints, bad data directories."""
    writers = _data_writers()
    write_cifar10, write_imagefolder = writers.write_cifar10, writers.write_imagefolder
    root = tmp_path_factory.mktemp("matrix")
    (root / "file").write_text("not a directory")
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    ck = root / "ckpt"
    ck.mkdir()
    p = {"tmp": root, "file": root / "file", "dir": root / "dir", "fifo": root / "fifo"}
    p["ckpt"] = _checkpoint(ck / "good.ckpt")
    p["ckpt_dwr_str"] = _checkpoint(
        ck / "dwr_str.ckpt", lambda c: c.__setitem__("dwr", "x"), reseal=False
    )
    p["ckpt_sd_list"] = _checkpoint(
        ck / "sd_list.ckpt", lambda c: c.__setitem__("state_dict", [1, 2]), reseal=False
    )
    p["ckpt_depth_inf"] = _checkpoint(ck / "inf.ckpt", _set_spec("depths", [math.inf, 1, 1]))
    p["ckpt_depth_1e6"] = _checkpoint(ck / "deep.ckpt", _set_spec("depths", [10**6, 1, 1]))
    p["ckpt_classes_str"] = _checkpoint(ck / "cls.ckpt", _set_spec("num_classes", "ten"))
    p["ckpt_flipped"] = _checkpoint(ck / "flip.ckpt", _flip_byte, reseal=False)
    p["ckpt_nan"] = _checkpoint(ck / "nan.ckpt", _nan_weight)
    cifar = write_cifar10(root / "cifar_str")
    import pickle

    import numpy as np

    with open(cifar / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((20, 3072), np.uint8), b"labels": ["cat"] * 20}, f)
    p["cifar_str_labels"] = cifar
    img = write_imagefolder(root / "imgf", per_class=4)
    for f in (img / "train").rglob("*.jpg"):
        f.write_bytes(b"not a jpeg")
    p["imgf_bad"] = img
    p.update(_issue24_paths(root, p, writers))
    return p


#: Copies of the good checkpoint that rows try to overwrite (each must stay intact).
OWN = ("own_same", "own_link", "own_hard", "own_export")


def _issue24_paths(root: Path, p: dict, writers) -> dict:
    """Inputs of issue 24: outputs that are inputs or special files, FIFOs for every reader,
    odd images, an engine file with NaN weights, a checkpoint with planted code."""
    import numpy as np
    from PIL import Image

    q = {k: root / f"{k}.ckpt" for k in OWN}
    for path in q.values():
        path.write_bytes(p["ckpt"].read_bytes())
    (root / "link.dwre").symlink_to(q["own_link"])
    os.link(q["own_hard"], root / "hard.ckpt")
    q["ckpt_dir"] = root / "run_with_teacher"  # a trained teacher's run directory
    q["ckpt_dir"].mkdir()
    (q["ckpt_dir"] / "best.ckpt").write_bytes(p["ckpt"].read_bytes())
    q["dev"] = Path("/dev/null")
    if os.geteuid() == 0:  # root could replace /dev/null itself: a node of our own instead
        q["dev"] = root / "null-node"
        os.mknod(q["dev"], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(root / "recipe.yaml")
    q["fifo_yaml"] = root / "recipe.yaml"
    q["cifar_fifo"] = writers.write_cifar10(root / "cifar_fifo")
    (q["cifar_fifo"] / "data_batch_1").unlink()
    os.mkfifo(q["cifar_fifo"] / "data_batch_1")
    q["imgf_fifo"] = writers.write_imagefolder(root / "imgf_fifo", per_class=2)
    os.mkfifo(q["imgf_fifo"] / "train" / "cat" / "9.jpg")
    q["ckpt_cifar"] = _checkpoint(
        root / "ckpt" / "cifar.ckpt", lambda c: c["dwr"].__setitem__("dataset", "cifar10")
    )
    q["eng"] = root / "tiny.dwre"
    assert main(["convert", str(q["ckpt_cifar"]), "-o", str(q["eng"]), "--repeats", "1"]) == 0
    q["eng_nan"] = _nan_engine_file(q["eng"], root / "nan.dwre")
    q["good_png"] = root / "good.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(q["good_png"])
    q["wide_png"] = root / "wide.png"
    Image.new("L", (1_000_000, 1)).save(q["wide_png"])
    q["int32_tif"] = root / "int32.tif"
    Image.fromarray(np.full((8, 8), 100_000, np.int32)).save(q["int32_tif"])
    q["ckpt_planted"] = root / "planted.ckpt"
    torch.save({"dwr": {}, "state_dict": {}, "x": _Planted()}, q["ckpt_planted"])
    return q


class _Planted:
    """Pickles as a call of print: harmless if it ever ran, and refused by weights_only."""

    def __reduce__(self):
        return (print, ("planted code ran",))


def _nan_engine_file(src: Path, dst: Path) -> Path:
    """``src`` with one NaN weight and a valid checksum."""
    import struct

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
    from engine_fuzz import repack, split

    header, payload = split(src.read_bytes())
    payload = bytearray(payload)
    desc = next(a for op in header["ops"] for a in op["arrays"].values() if a["dtype"] == "float32")
    payload[desc["offset"] : desc["offset"] + 4] = struct.pack("<f", math.nan)
    dst.write_bytes(repack(header, bytes(payload)))
    return dst


# (id, argv, words the message must contain); {name} is filled from ``paths``.
SUBPROCESS_ROWS = [
    # once hangs: absurd depths, factors near zero, a checkpoint with depth 10^6
    ("summary-depth-1e5", ["summary", "resnet20_cifar", "--depths", "100000", "3", "3"], "depth"),
    ("reshape-factor-1e-9", ["reshape", "resnet20_cifar", "--factor", "1e-9"], "depth"),
    ("eval-ckpt-depth-1e6", ["eval", "{ckpt_depth_1e6}"], "depth 1000000 exceeds"),
    # sizes that cannot fit in memory
    (
        "summary-classes-1e9",
        ["summary", "resnet20_cifar", "--num-classes", "1000000000"],
        "classes",
    ),
    (
        "summary-input-1e6",
        ["summary", "resnet20_cifar", "--input-size", "3", "1000000", "1000000"],
        "input size",
    ),
    (
        "summary-widths-16384",
        ["summary", "resnet20_cifar", "--widths", "16384", "16384", "16384"],
        "weights",
    ),
    ("bench-size-1e5", ["bench", "resnet18_cifar", "--size", "100000"], "size"),
    ("bench-batch-1e9", ["bench", "resnet18_cifar", "--batch", "1000000000"], "batch"),
    ("bench-threads-1e5", ["bench", "resnet18_cifar", "--threads", "100000"], "threads"),
    ("bench-memory", ["bench", "birealnet18", "--size", "8192", "--batch", "64"], "memory"),
    # a DwrError in a DataLoader worker: one clean line, not the worker's traceback
    (
        "train-imagefolder-bad-image-workers",
        [*TRAIN, "--dataset", "imagefolder", "--data-dir", "{imgf_bad}", "--workers", "1"]
        + ["--out", "{tmp}/imgf_out"],
        "cannot decode image",
    ),
]

IN_PROCESS_ROWS = [
    # once hangs (under the pytest timeout here; the subprocess rows cover the real command)
    ("run-factor-1e-9", ["run", "--factor", "1e-9", "--out", "{tmp}/run_f"], "depth"),
    ("bench-ckpt-depth-1e6", ["bench", "{ckpt_depth_1e6}"], "depth 1000000 exceeds"),
    ("prune-ckpt-depth-1e6", ["prune", "{ckpt_depth_1e6}", "--model", "resnet20_cifar"], "depth"),
    # --out: an existing file, under a file, on a special filesystem; checked before any work
    ("train-out-file", [*TRAIN, "--out", "{file}"], "exists and is not a directory"),
    ("train-out-under-file", [*TRAIN, "--out", "{file}/sub"], "cannot create --out"),
    ("train-out-proc", [*TRAIN, "--out", "/proc/dwr-test-out"], "cannot create --out"),
    ("run-out-file", ["run", "--out", "{file}"], "exists and is not a directory"),
    ("run-out-under-file", ["run", "--out", "{file}/sub"], "cannot create --out"),
    ("run-out-proc", ["run", "--out", "/proc/dwr-test-out"], "cannot create --out"),
    (
        "prune-out-dir",
        ["prune", "{ckpt}", "--model", "resnet20_cifar", "--out", "{dir}"],
        "is a directory",
    ),
    (
        "prune-out-under-file",
        ["prune", "{ckpt}", "--model", "resnet20_cifar", "--out", "{file}/p.json"],
        "not a directory",
    ),
    ("train-out-empty", [*TRAIN, "--out", ""], "--out is empty"),
    ("run-out-empty", ["run", "--out", ""], "--out is empty"),
    # numbers: NaN, negative, zero, out of range
    ("train-lr-nan", [*TRAIN, "--lr", "nan", "--out", "{tmp}/o"], "lr must be a number in"),
    ("train-lr-inf", [*TRAIN, "--lr", "inf", "--out", "{tmp}/o"], "lr must be a number in"),
    ("train-lr-negative", [*TRAIN, "--lr", "-0.1", "--out", "{tmp}/o"], "lr must be"),
    ("train-set-warmup-nan", [*TRAIN, "--set", "warmup_epochs=nan", "--out", "{tmp}/o"], "warmup"),
    ("train-set-lr-nan", [*TRAIN, "--set", "lr=.nan", "--out", "{tmp}/o"], "'lr'"),
    (
        "train-weight-decay-neg",
        [*TRAIN, "--weight-decay", "-1", "--out", "{tmp}/o"],
        "weight decay",
    ),
    ("train-set-grad-clip-neg", [*TRAIN, "--set", "grad_clip=-1", "--out", "{tmp}/o"], "grad_clip"),
    ("train-workers-neg", [*TRAIN, "--workers", "-1", "--out", "{tmp}/o"], "workers must be"),
    ("train-set-workers-neg", [*TRAIN, "--set", "workers=-1", "--out", "{tmp}/o"], "'workers'"),
    ("train-set-batches-neg", [*TRAIN, "--set", "train_batches=-1", "--out", "{tmp}/o"], "batches"),
    ("train-threads-neg", [*TRAIN, "--threads", "-1", "--out", "{tmp}/o"], "threads must be"),
    ("train-threads-zero", [*TRAIN, "--threads", "0", "--out", "{tmp}/o"], "threads must be"),
    ("train-label-smoothing-1", [*TRAIN, "--label-smoothing", "1", "--out", "{tmp}/o"], "smooth"),
    ("train-val-fraction-nan", [*TRAIN, "--val-fraction", "nan", "--out", "{tmp}/o"], "val-frac"),
    ("train-seed-neg", [*TRAIN, "--seed", "-1", "--out", "{tmp}/o"], "seed must be"),
    ("train-depth-1e5", [*TRAIN, "--depths", "100000", "1", "1", "--out", "{tmp}/o"], "depth"),
    ("train-batch-huge", [*TRAIN, "--batch-size", "10000000", "--out", "{tmp}/o"], "batch size"),
    ("run-overparam-nan", ["run", "--overparam", "nan", "--out", "{tmp}/o"], "overparam"),
    ("run-epochs-zero", ["run", "--epochs", "0", "--out", "{tmp}/o"], "epochs must be"),
    ("run-samples-neg", ["run", "--samples", "-5", "--out", "{tmp}/o"], "samples must be"),
    ("reshape-factor-nan", ["reshape", "resnet20_cifar", "--factor", "nan"], "factor"),
    ("reshape-factor-inf", ["reshape", "resnet20_cifar", "--factor", "inf"], "factor"),
    ("summary-input-zero", ["summary", "resnet20_cifar", "--input-size", "3", "0", "32"], "input"),
    ("eval-batch-zero", ["eval", "{ckpt}", "--batch-size", "0"], "batch size must be"),
    # Lightning's own configuration errors
    ("train-devices-0", [*TRAIN, "--devices", "0", "--out", "{tmp}/o"], "devices must be"),
    ("train-devices-abc", [*TRAIN, "--devices", "abc", "--out", "{tmp}/o"], "devices must be"),
    ("train-devices-neg", [*TRAIN, "--devices", "-1", "--out", "{tmp}/o"], "devices must be"),
    ("train-strategy-nosuch", [*TRAIN, "--strategy", "nosuch", "--out", "{tmp}/o"], "strategy"),
    ("train-num-nodes-0", [*TRAIN, "--num-nodes", "0", "--out", "{tmp}/o"], "num-nodes must"),
    ("train-accelerator-nosuch", [*TRAIN, "--accelerator", "x", "--out", "{tmp}/o"], "invalid"),
    ("train-num-nodes-2-unlaunched", [*TRAIN, "--num-nodes", "2", "--out", "{tmp}/o"], "node"),
    # data files
    (
        "train-cifar-string-labels",
        [*TRAIN, "--dataset", "cifar10", "--data-dir", "{cifar_str_labels}", "--out", "{tmp}/o"],
        "should be a list of integer labels",
    ),
    # checkpoints of odd structure, corrupt or non-finite
    ("eval-ckpt-dwr-string", ["eval", "{ckpt_dwr_str}"], "'dwr' entry must be a mapping"),
    ("eval-ckpt-state-dict-list", ["eval", "{ckpt_sd_list}"], "state dict must map"),
    ("eval-ckpt-depth-inf", ["eval", "{ckpt_depth_inf}"], "depths must be a list of integers"),
    ("eval-ckpt-classes-str", ["eval", "{ckpt_classes_str}"], "num_classes must be an integer"),
    ("eval-ckpt-flipped-byte", ["eval", "{ckpt_flipped}"], "do not match its checksum"),
    ("eval-ckpt-nan-weights", ["eval", "{ckpt_nan}"], "non-finite weights"),
    ("bench-ckpt-flipped-byte", ["bench", "{ckpt_flipped}"], "checksum"),
    # special files: torch.load on a FIFO blocks, on /dev/zero never ends
    ("eval-ckpt-fifo", ["eval", "{fifo}"], "not a regular file"),
    ("eval-ckpt-dev-zero", ["eval", "/dev/zero"], "not a regular file"),
    ("bench-ckpt-dev-zero", ["bench", "/dev/zero"], "not a regular file"),
    ("prune-ckpt-dir", ["prune", "{dir}", "--model", "resnet20_cifar"], "not a regular file"),
    # issue 24: an output that is an input (also via links) or a special file
    ("convert-o-same-ckpt", ["convert", "{own_same}", "-o", "{own_same}"], "is the input"),
    ("convert-o-symlink-to-input", ["convert", "{own_link}", "-o", "{tmp}/link.dwre"], "input"),
    ("convert-o-hardlink-of-input", ["convert", "{tmp}/hard.ckpt", "-o", "{own_hard}"], "input"),
    ("export-o-input-ckpt", ["export", "{own_export}", "-o", "{own_export}"], "is the input"),
    (
        "prune-out-input-ckpt",
        ["prune", "{own_same}", "--model", "resnet20_cifar", "--out", "{own_same}"],
        "is the input",
    ),
    ("convert-o-fifo", ["convert", "{ckpt}", "-o", "{fifo}"], "is a FIFO, not a regular file"),
    ("export-o-fifo", ["export", "{ckpt}", "-o", "{fifo}"], "is a FIFO, not a regular file"),
    ("convert-o-device", ["convert", "{ckpt}", "-o", "{dev}"], "is a device, not a regular"),
    ("export-o-device", ["export", "{ckpt}", "-o", "{dev}"], "is a device, not a regular"),
    (
        "convert-o-unwritable",
        ["convert", "{ckpt}", "-o", "/proc/dwr-test.dwre"],
        "cannot write -o /proc/dwr-test.dwre: cannot create a file in /proc (",
    ),
    ("profile-out-unwritable", ["profile", "--out", "/proc/dwr-t.json"], "cannot write --out"),
    (
        "train-teacher-in-out",
        [*TRAIN, "--teacher", "{ckpt_dir}/best.ckpt", "--out", "{ckpt_dir}"],
        "is the input",
    ),
    # issue 24: every reader refuses a FIFO at once
    ("predict-image-fifo", ["predict", "{eng}", "{fifo}"], "a FIFO, not a regular file"),
    (
        "convert-class-names-fifo",
        ["convert", "{ckpt_cifar}", "-o", "{tmp}/cn.dwre", "--class-names", "{fifo}"],
        "a FIFO, not a regular file",
    ),
    ("train-recipe-fifo", [*TRAIN, "--recipe", "{fifo_yaml}", "--out", "{tmp}/o"], "a FIFO"),
    (
        "train-cifar-fifo",
        [*TRAIN, "--dataset", "cifar10", "--data-dir", "{cifar_fifo}", "--out", "{tmp}/o"],
        "a FIFO, not a regular file",
    ),
    (
        "train-imagefolder-fifo",
        [*TRAIN, "--dataset", "imagefolder", "--data-dir", "{imgf_fifo}", "--out", "{tmp}/o"],
        "a FIFO, not a regular file",
    ),
    # issue 24: images, weights and options
    ("predict-png-1000000x1", ["predict", "{eng}", "{wide_png}"], "at most 8192 pixels a side"),
    ("predict-tiff-int32", ["predict", "{eng}", "{int32_tif}"], "no known range"),
    ("predict-engine-nan", ["predict", "{eng_nan}", "{good_png}", "--json"], "NaN or infinite"),
    ("eval-ckpt-planted-code", ["eval", "{ckpt_planted}"], "may be malicious"),
    ("convert-ckpt-planted-code", ["convert", "{ckpt_planted}", "-o", "{tmp}/p.dwre"], "malicious"),
    (
        "export-batch-1e22",
        ["export", "{ckpt}", "-o", "{tmp}/b.onnx", "--batch", "99999999999999999999999"],
        "batch must be >= 1 and <= 65536",
    ),
    ("export-batch-1e12", ["export", "{ckpt}", "-o", "{tmp}/b.onnx", "--batch", "10" * 6], "batch"),
    ("export-size-1e12", ["export", "{ckpt}", "-o", "{tmp}/s.onnx", "--size", "10" * 6], "size"),
    (
        "prune-min-samples-1e9",
        ["prune", "{ckpt}", "--model", "resnet20_cifar", "--min-samples", "1000000000"],
        "min-samples must be",
    ),
    (
        "prune-min-samples-above-widths",
        ["prune", "{ckpt}", "--model", "resnet20_cifar", "--min-samples", "9"],
        "exceeds the channels of every stage",
    ),
]
if not torch.cuda.is_available():
    IN_PROCESS_ROWS.append(
        ("train-accelerator-gpu", [*TRAIN, "--accelerator", "gpu", "--out", "{tmp}/o"], "gpu")
    )


def _fill(argv, paths):
    return [a.format(**paths) for a in argv]


def _check(code: int, err: str, needle: str, seconds: float) -> None:
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"{len(lines)} stderr lines:\n{err}"
    assert lines[0].startswith("dwr: error: "), lines[0]
    assert needle.lower() in lines[0].lower(), lines[0]
    assert seconds < CPU_LIMIT_S, f"took {seconds:.1f} CPU seconds"


def _run_subprocess(argv: list[str]) -> tuple[int, str, float]:
    """(exit code, stderr, CPU seconds) of ``dwr ARGV``, killed after ``TIMEOUT_S``.

    CPU time, not wall time, tells a hang (building an absurd network burns CPU) from a slow
    start on a loaded machine (waiting for a core costs wall time only)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    with tempfile.TemporaryFile() as err_file:
        p = subprocess.Popen(
            [sys.executable, "-m", "dwr.cli.main", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
        timer = threading.Timer(TIMEOUT_S, p.kill)
        timer.start()
        _, status, usage = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = code = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
    if code == -signal.SIGKILL:
        err = f"hang: no exit within {TIMEOUT_S} s\n{err}"
    return code, err, usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def subprocess_results(paths):
    """Every subprocess row, three at a time."""
    argvs = {rid: _fill(argv, paths) for rid, argv, _ in SUBPROCESS_ROWS}
    with ThreadPoolExecutor(3) as pool:
        futures = {rid: pool.submit(_run_subprocess, argv) for rid, argv in argvs.items()}
        return {rid: f.result() for rid, f in futures.items()}


@pytest.mark.parametrize("rid,argv,needle", SUBPROCESS_ROWS, ids=[r[0] for r in SUBPROCESS_ROWS])
def test_subprocess_row(subprocess_results, rid, argv, needle):
    code, err, seconds = subprocess_results[rid]
    _check(code, err, needle, seconds)


@pytest.mark.timeout(TIMEOUT_S)
@pytest.mark.parametrize("rid,argv,needle", IN_PROCESS_ROWS, ids=[r[0] for r in IN_PROCESS_ROWS])
def test_in_process_row(paths, capsys, rid, argv, needle):
    t0 = time.process_time()
    code = main(_fill(argv, paths))
    err = capsys.readouterr().err
    _check(code, err, needle, time.process_time() - t0)
    assert not (paths["tmp"] / "o").exists(), "a failed run left its --out behind"
    for own in OWN:
        assert paths[own].read_bytes() == paths["ckpt"].read_bytes(), f"{own} was overwritten"
    assert stat.S_ISFIFO(os.lstat(paths["fifo"]).st_mode), "the FIFO was replaced"
    assert stat.S_ISCHR(os.stat(paths["dev"]).st_mode), "the device node was replaced"


def test_prune_out_dir_leaves_no_temp_file(paths, capsys):
    argv = ["prune", str(paths["ckpt"]), "--model", "resnet20_cifar", "--out", str(paths["dir"])]
    assert main(argv) == 2
    capsys.readouterr()
    assert not list(paths["tmp"].glob("dir*.tmp")) and not list(paths["dir"].iterdir())


def _dds_bytes() -> bytes:
    """A DDS file Pillow identifies, then fails on with NotImplementedError."""
    import struct

    hdr = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 0) + b"\0" * 44
    pf = struct.pack("<8I", 32, 0x80000, 0, 32, 0, 0, 0, 0)
    return b"DDS " + hdr + pf + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + b"\0" * 64


def test_one_undecodable_image_does_not_stop_the_batch(paths, capsys):
    """A DDS Pillow opens but cannot decode once ended predict with an internal
    NotImplementedError at --batch 1; now: one line for it, the others go on, exit 2."""

    dds = paths["tmp"] / "bad.dds"
    dds.write_bytes(_dds_bytes())
    good = str(paths["good_png"])
    for batch in ("1", "8"):
        argv = ["predict", str(paths["eng"]), good, str(dds), good, "--batch", batch, "--json"]
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert len(out.strip().splitlines()) == 2
        assert err.strip().splitlines() == [
            f"dwr: error: {dds}: cannot decode the image (NotImplementedError: Unknown pixel "
            "format flags 524288)"
        ]


NAN_MODULE = """
import math
import dwr


def make():
    model = dwr.create_model("resnet20_cifar", depths=[1, 1, 1], widths=[8, 8, 8]).eval()
    model.stages[0][0].conv.weight.data.view(-1)[0] = math.nan  # a binary conv: its sign hides it
    return model
"""


def test_convert_refuses_a_module_with_nan_weights(paths, capsys, monkeypatch, tmp_path):
    (tmp_path / "nan_module_24.py").write_text(NAN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "nan.dwre"
    assert main(["convert", "nan_module_24:make", "-o", str(out), "--input-size", "3", "32", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stages.0.0.conv.weight holds NaN or infinite values" in err[0]
    assert not out.exists()


def test_json_output_never_holds_bare_nan(capsys):
    import json

    from dwr.cli.options import print_json

    print_json({"a": math.nan, "b": [1.5, math.inf, {"c": -math.inf}], "d": "nan"})
    got = json.loads(capsys.readouterr().out)
    assert got == {"a": None, "b": [1.5, None, {"c": None}], "d": "nan"}


def test_eval_leaves_out_an_undecodable_image_and_goes_on(paths, capsys):
    """One bad file of an ImageFolder once ended ``dwr eval`` with an internal error; now it
    gets one line, the other images are evaluated, and the exit code is 2."""
    import shutil

    root = paths["tmp"] / "imgf_dds"
    shutil.copytree(paths["imgf_fifo"], root, ignore=shutil.ignore_patterns("9.jpg"))
    bad = root / "val" / "dog" / "0.jpg"
    bad.write_bytes(_dds_bytes())
    ckpt = _checkpoint(paths["tmp"] / "imgf.ckpt", dataset="imagefolder", num_classes=2)
    argv = ["eval", str(ckpt), "--dataset", "imagefolder", "--data-dir", str(root)]
    assert main([*argv, "--batch-size", "3", "--json"]) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [
        f"dwr: error: cannot decode image {bad}: cannot decode the image (NotImplementedError: "
        "Unknown pixel format flags 524288); remove or replace it"
    ]
    import json

    assert json.loads(out)["skipped_images"] == 1
    bad.write_bytes(paths["good_png"].read_bytes())  # the control: every image decodes
    assert main([*argv, "--json"]) == 0
    assert "skipped_images" not in json.loads(capsys.readouterr().out)
