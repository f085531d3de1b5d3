"""Fuzzed engine files and fuzzed images: loading and running them (what ``dwr predict``
does) fails only with DwrError.

CI runs a few hundred iterations; ``DWR_FUZZ_ITERATIONS=5000`` makes it the measurement of
issues #11 and #24 (``python tests/engine/engine_fuzz.py 5000`` and ``python
tests/engine/image_fuzz.py MODEL.dwre 5000`` print the same counts as JSON).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from engine_fuzz import fuzz, saved_models
from engine_helpers import random_model
from image_fuzz import fuzz_images, mutate, seed_images


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return saved_models(tmp_path_factory.mktemp("fuzz"))


def test_fuzzed_files_fail_only_with_dwr_errors(files):
    n = int(os.environ.get("DWR_FUZZ_ITERATIONS", "300"))
    result = fuzz(files, n, seed=int(os.environ.get("DWR_FUZZ_SEED", "0")))
    assert result.other_exceptions == 0, result.examples
    # the mutations exercise both outcomes: refused files, and files that load and run
    assert result.refused_at_load > n // 4
    assert result.loaded > n // 10 and result.inference_ok > 0
    assert result.inferences == 2 * result.loaded


def test_the_fuzzed_models_cover_every_op_and_shortcut(files):
    """A new op kind or shortcut needs a model in engine_fuzz.saved_models."""
    import dwr.engine as engine
    from dwr.engine.ops import OP_TYPES
    from dwr.lowering.ops import SHORTCUTS

    ops = [op for f in files for op in engine.load(f).ops]
    assert {op.kind for op in ops} == set(OP_TYPES)
    assert {op.shortcut for op in ops if hasattr(op, "shortcut")} == set(SHORTCUTS)
    assert any(getattr(op, "out", "") == "bits" for op in ops)


@pytest.fixture(scope="module")
def predict_model(tmp_path_factory):
    import dwr.engine as engine
    from dwr.engine import Preprocess

    pre = Preprocess((3, 32, 32), 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    names = [str(i) for i in range(10)]
    path = tmp_path_factory.mktemp("image_fuzz") / "r20.dwre"
    engine.convert(random_model("resnet20_cifar"), preprocess=pre, class_names=names).save(path)
    return path


@pytest.mark.timeout(300)
def test_fuzzed_images_fail_only_with_dwr_errors(predict_model):
    n = int(os.environ.get("DWR_FUZZ_ITERATIONS", "600"))
    result = fuzz_images(predict_model, n, seed=int(os.environ.get("DWR_FUZZ_SEED", "0")))
    assert result.other_exceptions == 0, result.examples
    # the mutations exercise both outcomes: refused files, and files that decode and run
    assert result.refused > n // 4 and result.predicted > n // 10
    assert result.refused + result.predicted == result.iterations == n


def test_the_image_seeds_cover_the_pixel_modes_and_decode(predict_model):
    """Every seed is a valid image the decoder takes (so a refusal is the mutation's doing),
    16-bit and float seeds among them."""
    import dwr.engine as engine

    seeds = seed_images()
    assert {"grey16.png", "float.tif", "grey16.tif", "rgb.jpg", "rgb.dds"} <= set(seeds)
    pre = engine.load(predict_model).preprocess
    for name, blob in seeds.items():
        path = predict_model.parent / name
        path.write_bytes(blob)
        assert pre.load(path).shape == (3, 32, 32), name
    assert mutate(seeds["rgb.png"], np.random.default_rng(0)) != seeds["rgb.png"]


def test_predict_on_fuzzed_images_is_one_line_per_bad_file(predict_model, tmp_path, capsys):
    """The real command over a batch of mutated images: no internal error, exit 0 or 2, one
    stderr line per refused file and one result per other file."""
    from dwr.cli.main import main

    seeds, rng = seed_images(), np.random.default_rng(1)
    files = []
    for i in range(60):
        name = sorted(seeds)[i % len(seeds)]
        files.append(tmp_path / f"{i}-{name}")
        files[-1].write_bytes(mutate(seeds[name], rng))
    code = main(["predict", str(predict_model), *map(str, files), "--json", "--batch", "7"])
    out, err = capsys.readouterr()
    assert "internal error" not in err and code in (0, 2)
    errors = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith("dwr: error: ") for line in errors)
    assert len(errors) + len(out.splitlines()) == len(files)
    assert (code == 2) == bool(errors)
