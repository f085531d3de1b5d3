"""A process environment without PyTorch: for the tests that the runtime never imports it."""

from __future__ import annotations

import os

BLOCKER = '''
import sys

BLOCKED = {"torch", "lightning", "pytorch_lightning", "sklearn", "scipy", "matplotlib", "yaml"}

class _NoTorch:
    """Makes ``import torch`` (and the training stack) fail, as on a bare runtime."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: this runtime has no PyTorch")
        return None

sys.meta_path.insert(0, _NoTorch())
'''


def no_torch_env(tmp_path) -> dict[str, str]:
    """Environment whose Python processes cannot import torch (a ``sitecustomize``)."""
    site = tmp_path / "no_torch"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env
