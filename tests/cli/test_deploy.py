"""``dwr convert`` and ``dwr predict``: engine files with their preprocessing, predictions that
agree with PyTorch, one line per bad input, and a ``predict`` that never imports PyTorch."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dwr
import dwr.engine as engine
from dwr.cli.main import main
from dwr.engine.compiled import _PREFIX, FORMAT_VERSION, MAGIC
from no_torch import no_torch_env
from sign_ties import reference_with_engine_ties


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny resnet20 trained for two batches on digits (real checkpoint, real metadata)."""
    from dwr.data import load_dataset
    from dwr.train import train

    spec = dwr.get_spec("resnet20_cifar", depths=[1, 1, 1], widths=[8, 8, 8])
    out = tmp_path_factory.mktemp("run")
    overrides = {"epochs": 1, "train_batches": 1, "batch_size": 16, "workers": 0}
    result = train(spec, load_dataset("digits"), out, overrides=overrides, quiet=True)
    return Path(result["checkpoint"])


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A directory of images in several modes, a non-image, a broken PNG and a subfolder."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    (d / "sub").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(d / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (33, 33), dtype=np.uint8)).save(d / "sub" / "grey.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 60, 4), dtype=np.uint8)).save(d / "rgba.png")
    (d / "notes.txt").write_text("not an image, and not looked at")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    return d


@pytest.fixture(scope="module")
def engine_file(tmp_path_factory, checkpoint) -> Path:
    path = tmp_path_factory.mktemp("eng") / "model.dwre"
    assert main(["convert", str(checkpoint), "-o", str(path)]) == 0
    return path


def test_convert_a_checkpoint(capsys, checkpoint, tmp_path):
    from dwr.data import load_dataset

    rc, out, err = _run(capsys, "convert", checkpoint, "-o", tmp_path / "m.dwre")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"wrote {tmp_path / 'm.dwre'}") and "engine format 3" in lines[0]
    assert lines[2].startswith("cost: BOPs") and lines[3].startswith("latency: ")
    comp = engine.load(tmp_path / "m.dwre")
    data = load_dataset("digits")
    assert comp.preprocess.input_size == (3, 32, 32) and comp.preprocess.resize == 32
    np.testing.assert_allclose(comp.preprocess.mean, data.mean, rtol=1e-6)
    np.testing.assert_allclose(comp.preprocess.std, data.std, rtol=1e-6)
    assert comp.class_names == data.class_names


def test_convert_json_and_a_registered_name(capsys, tmp_path):
    rc, out, _ = _run(
        capsys, "convert", "birealnet18", "-o", tmp_path / "b.dwre", "--json", "--repeats", "2"
    )
    assert rc == 0
    r = json.loads(out)
    written = _PREFIX.unpack_from((tmp_path / "b.dwre").read_bytes())[1]
    assert r["format"] == written == 3 and r["stem_precision"] == "f32"  # f32 stem: format 3
    assert r["source"].startswith("registered model")
    assert r["preprocess"]["input_size"] == [3, 224, 224] and r["preprocess"]["resize"] == 256
    assert r["cost"]["bops"] > 1e9 and r["latency_ms"]["min_ms"] > 0
    assert r["classes"] == 1000 and r["bytes"] == (tmp_path / "b.dwre").stat().st_size


def test_convert_with_class_names_file(capsys, tmp_path):
    (tmp_path / "names.txt").write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    args = ("convert", "resnet20_cifar", "-o", tmp_path / "m.dwre", "--repeats", "2")
    rc, _, err = _run(capsys, *args, "--class-names", tmp_path / "names.txt")
    assert rc == 0, err
    assert engine.load(tmp_path / "m.dwre").class_names[3] == "digit 3"
    (tmp_path / "few.txt").write_text("a\nb\n")
    rc, _, err = _run(capsys, *args, "--class-names", tmp_path / "few.txt")
    assert rc == 2 and "has 2 class names; the model has 10" in err


@pytest.mark.parametrize(
    "args, match",
    [
        (["nope.ckpt"], "does not exist"),
        (["no_such_model"], "unknown model"),
        (["resnet20_cifar", "--repeats", "0"], "repeats must be"),
    ],
)
def test_convert_bad_input(capsys, tmp_path, args, match):
    rc, out, err = _run(capsys, "convert", *args, "-o", tmp_path / "m.dwre")
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.dwre").exists()


def test_convert_refuses_an_unwritable_output_before_working(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    rc, out, err = _run(capsys, "convert", "resnet20_cifar", "-o", tmp_path / "file" / "m.dwre")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_predict_a_directory_goes_on_past_bad_images(capsys, engine_file, images, tmp_path):
    (tmp_path / "empty").mkdir()
    args = [engine_file, images, tmp_path / "empty", tmp_path / "missing.png", "--top-k", "3"]
    rc, out, err = _run(capsys, "predict", *args)
    assert rc == 2
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [
        str(images / "rgb.png"),
        str(images / "rgba.png"),
        str(images / "sub" / "grey.jpg"),
    ]
    assert all(len(line.split()) == 1 + 2 * 3 for line in lines)
    errors = err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("dwr: error: ") for e in errors)
    assert "broken.png" in err and "no images in this directory" in err
    assert "missing.png: no such file" in err and "Traceback" not in err


def test_predict_json_matches_the_pytorch_model(capsys, checkpoint, engine_file, images):
    from dwr.train import load_checkpoint

    rc, out, err = _run(capsys, "predict", engine_file, images / "rgb.png", "--json")
    assert rc == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["path"] == str(images / "rgb.png") and len(row["top_k"]) == 5
    scores = [t["score"] for t in row["top_k"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    comp = engine.load(engine_file)
    x = comp.preprocess.load(images / "rgb.png")[None]
    # PyTorch's logits with the engine's sign wherever a value is within rounding of 0 (a
    # tie either side may round its own way; any other difference fails here)
    _, ref, _ = reference_with_engine_ties(load_checkpoint(checkpoint), comp, torch.from_numpy(x))
    ref = torch.from_numpy(ref[0])
    assert row["top_k"][0]["index"] == int(ref.argmax())
    prob = torch.softmax(ref, 0)
    np.testing.assert_allclose(scores, prob.sort(descending=True).values[:5], atol=1e-4)


def test_batches_and_threads_give_the_same_answers(capsys, engine_file, images):
    rc, one, _ = _run(capsys, "predict", engine_file, images, "--json", "--batch", "1")
    rc2, many, _ = _run(
        capsys, "predict", engine_file, images, "--json", "--batch", "3", "--threads", "2"
    )
    assert rc == rc2 == 2  # the broken PNG
    assert [json.loads(x)["top_k"][0] for x in one.splitlines()] == [
        json.loads(x)["top_k"][0] for x in many.splitlines()
    ]


def test_predict_with_a_checkpoint(capsys, checkpoint, engine_file, images):
    rc, from_ckpt, err = _run(capsys, "predict", checkpoint, images / "rgb.png", "--top-k", "1")
    assert rc == 0, err
    rc, from_file, _ = _run(capsys, "predict", engine_file, images / "rgb.png", "--top-k", "1")
    assert from_ckpt == from_file


def _with_version(blob: bytes, version: int, drop: tuple[str, ...] = ()) -> bytes:
    _, _, _, hlen, _, _ = _PREFIX.unpack_from(blob)
    body = blob[_PREFIX.size :]
    header, payload = json.loads(body[:hlen]), body[hlen:]
    for key in drop:
        del header[key]
    h = json.dumps(header).encode()
    digest = hashlib.sha256(h + payload).digest()
    return _PREFIX.pack(MAGIC, version, 0, len(h), len(payload), digest) + h + payload


@pytest.mark.parametrize(
    "version, drop, match",
    [
        (2, ("preprocess", "class_names"), "records no preprocessing or class names"),
        (FORMAT_VERSION + 1, (), "written by a newer dwr"),
    ],
)
def test_engine_files_of_other_format_versions(
    capsys, engine_file, images, tmp_path, version, drop, match
):
    path = tmp_path / "other.dwre"
    path.write_bytes(_with_version(engine_file.read_bytes(), version, drop))
    rc, out, err = _run(capsys, "predict", path, images / "rgb.png")
    assert rc == 2 and out == "" and match in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("model", ["/dev/zero", "missing.dwre", "notes.txt"])
def test_predict_bad_models(capsys, images, model):
    path = images / model if model == "notes.txt" else model
    rc, out, err = _run(capsys, "predict", path, images / "rgb.png")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_predict_bad_options(capsys, engine_file, images):
    for opt in (["--top-k", "0"], ["--batch", "-1"], ["--threads", "100000"]):
        try:
            rc = main(["predict", str(engine_file), str(images), *opt])
        except SystemExit as exc:  # argparse's own exit
            rc = exc.code
        assert rc == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and opt[0] in err


def test_predict_never_imports_torch(engine_file, images, tmp_path):
    code = (
        "import sys\n"
        "from dwr.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert not any(m.split('.')[0] == 'torch' for m in sys.modules), 'torch imported'\n"
        "sys.exit(rc)\n"
    )
    args = ["predict", engine_file, images / "rgb.png", images / "sub", "--json"]
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=no_torch_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["path"] for line in out.stdout.splitlines()] == [
        str(images / "rgb.png"),
        str(images / "sub" / "grey.jpg"),
    ]


#: The README's deploy example (docs: "Deploy a .dwre with just the runtime"), run as written.
README_EXAMPLE = [
    "dwr convert resnet20_cifar -o model.dwre",
    "dwr predict model.dwre images/ --top-k 3",
    "dwr predict model.dwre images/cat.png --json",
]


def test_readme_example(tmp_path, images):
    (tmp_path / "images").mkdir()
    Image.open(images / "rgb.png").save(tmp_path / "images" / "cat.png")
    Image.open(images / "sub" / "grey.jpg").save(tmp_path / "images" / "dog.jpg")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for command in README_EXAMPLE:
        argv = command.split()
        cmd = [sys.executable, "-m", "dwr.cli.main", *argv[1:]]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert out.returncode == 0, (command, out.stderr)
    assert json.loads(out.stdout)["path"] == "images/cat.png"


def test_progress_bar_only_on_a_terminal(engine_file, images):
    """stderr a terminal: a progress bar is drawn there; stdout keeps one line per image."""
    import pty

    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "dwr.cli.main", "predict", str(engine_file), str(images)]
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="100")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=env, text=True)
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 2  # the broken PNG
    assert "classifying" in terminal and "broken.png" in terminal
    assert len(out.splitlines()) == 3 and "classifying" not in out


CALLABLES = """
import dwr


def small():
    return dwr.create_model("resnet20_cifar", widths=[8, 16, 32])


def not_a_model():
    return 3


def broken():
    raise RuntimeError("no weights here")
"""


@pytest.mark.parametrize(
    "ref, match",
    [
        ("h2_user_models:small", None),
        ("h2_user_models:not_a_model", "returned int, not a torch nn.Module"),
        ("h2_user_models:broken", "failed: RuntimeError: no weights here"),
        ("h2_user_models:missing", "has no callable 'missing'"),
        ("h2_no_such_module:small", "cannot import 'h2_no_such_module'"),
    ],
)
def test_convert_a_python_callable(capsys, tmp_path, monkeypatch, ref, match):
    (tmp_path / "h2_user_models.py").write_text(CALLABLES)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc, out, err = _run(capsys, "convert", ref, "-o", tmp_path / "m.dwre", "--repeats", "1")
    if match is None:
        assert rc == 0, err
        assert "from a Python callable" in out
        assert engine.load(tmp_path / "m.dwre").spec.widths == (8, 16, 32)
    else:
        assert rc == 2 and match in err and len(err.strip().splitlines()) == 1


FOREIGN = '''
import torch
import torch.nn.functional as F
from torch import nn


class TinyBnn(nn.Module):
    """Not a dwr backbone: a stem, one sign-binarized residual conv, a classifier."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.weight = nn.Parameter(torch.randn(16, 16, 3, 3))
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 7)

    def forward(self, x):
        x = self.bn1(self.conv1(x))
        x = self.bn2(F.conv2d(torch.sign(x), torch.sign(self.weight), padding=1)) + x
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
'''


def test_convert_a_foreign_model_through_the_front_door(capsys, tmp_path, monkeypatch, images):
    import inspect

    if "example_input" not in inspect.signature(engine.convert).parameters:
        pytest.skip("the engine's front door (convert(model, example_input)) is not here")
    (tmp_path / "h2_foreign.py").write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["-o", tmp_path / "f.dwre", "--input-size", "3", "48", "48", "--repeats", "1"]
    rc, out, err = _run(capsys, "convert", "h2_foreign:TinyBnn", *args)
    assert rc == 0, err
    comp = engine.load(tmp_path / "f.dwre")
    assert comp.preprocess.input_size == (3, 48, 48) and comp.class_names == list("0123456")
    rc, out, err = _run(capsys, "predict", tmp_path / "f.dwre", images / "rgb.png", "--top-k", "2")
    assert rc == 0 and out.split()[1] in comp.class_names


def test_convert_input_size_overrides_the_default(capsys, tmp_path):
    args = ["-o", tmp_path / "m.dwre", "--repeats", "1", "--input-size", "3", "48", "40"]
    rc, _, err = _run(capsys, "convert", "resnet20_cifar", *args)
    assert rc == 0, err
    pre = engine.load(tmp_path / "m.dwre").preprocess
    assert pre.input_size == (3, 48, 40) and pre.resize == 48
    rc, _, err = _run(
        capsys, "convert", "vgg_small_cifar", *args[:4], "--input-size", "3", "4", "4"
    )
    assert rc == 2 and "too small" in err


def test_convert_without_torch_is_one_line(tmp_path):
    cmd = [sys.executable, "-m", "dwr.cli.main", "convert", "resnet20_cifar", "-o", "m.dwre"]
    out = subprocess.run(
        cmd, cwd=tmp_path, env=no_torch_env(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "dwr convert needs PyTorch" in out.stderr
