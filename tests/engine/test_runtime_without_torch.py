"""A deployed runtime needs no PyTorch: in a process where ``import torch`` raises, a saved
engine file loads, an image is preprocessed and the model predicts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from engine_helpers import random_model
from PIL import Image

import dwr.engine as engine
from dwr.engine import Preprocess
from no_torch import no_torch_env

RUNTIME = """
import sys
import numpy as np
try:
    import torch
except ImportError:
    pass
else:
    sys.exit("torch imported")
import dwr.engine
m = dwr.engine.load(sys.argv[1])
x = m.preprocess.load(sys.argv[2])[None]
logits = m(x)
assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
np.save(sys.argv[3], logits)
print(m.class_names[int(logits.argmax())])
"""


def test_load_and_predict_without_torch(tmp_path):
    comp = engine.convert(
        random_model("resnet20_cifar"),
        preprocess=Preprocess((3, 32, 32), 32, (0.5,) * 3, (0.25,) * 3),
        class_names=[f"c{i}" for i in range(10)],
    )
    comp.save(tmp_path / "m.dwre")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    out = subprocess.run(
        [sys.executable, "-c", RUNTIME, tmp_path / "m.dwre", tmp_path / "a.png", tmp_path / "l"],
        env=no_torch_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    want = comp(comp.preprocess.load(tmp_path / "a.png")[None])
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"), want)
    assert out.stdout.strip() == f"c{int(want.argmax())}"
