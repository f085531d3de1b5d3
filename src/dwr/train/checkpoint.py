"""Checkpoints that survive crashes and describe themselves.

A checkpoint is one file (Lightning's dict) written to a temporary file in the same directory
and renamed over the target (``os.replace`` is atomic), so ``last.ckpt`` and ``best.ckpt`` are
always either the old or the new complete file. Besides Lightning's state (weights, optimizer,
scheduler, loops, callbacks) it holds ``checkpoint["dwr"]``: the model spec, the recipe, the
epoch, whether weights were real-valued (two-step, step 1) and the RNG states.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dwr.backbones import Backbone, BackboneSpec, build
from dwr.errors import DwrError

FORMAT = 1


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, fsync, rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict; :class:`DwrError` naming the file if missing, truncated or alien."""
    p = Path(path)
    if not p.is_file():
        raise DwrError(f"checkpoint {p} does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip/pickle errors from a truncated or foreign file
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DwrError(
            f"checkpoint {p} is truncated or corrupt ({msg}); use another checkpoint "
            "(e.g. best.ckpt or last.ckpt of the same run) or retrain"
        ) from None
    if not isinstance(ckpt, dict) or "dwr" not in ckpt or "state_dict" not in ckpt:
        raise DwrError(f"{p} is not a dwr checkpoint (it has no model spec); was it made by dwr?")
    return ckpt


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: tmp file + rename on save, clear errors on load."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return read_checkpoint(path)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    torch.set_rng_state(state["torch"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def set_real_weights(model: torch.nn.Module, real: bool) -> None:
    """Two-step training, step 1: keep binary activations but use real weights (or undo it)."""
    from dwr.binary import BinaryConv2d

    for m in model.modules():
        if isinstance(m, BinaryConv2d) and m.input_binarizer is not None:
            if real:
                if not hasattr(m, "_dwr_weight_binarizer"):
                    m._dwr_weight_binarizer = m.weight_binarizer
                m.weight_binarizer = None
            elif hasattr(m, "_dwr_weight_binarizer"):
                m.weight_binarizer = m._dwr_weight_binarizer


def describe(spec: BackboneSpec) -> str:
    return f"{spec.name or spec.family} (depths {list(spec.depths)}, widths {list(spec.widths)})"


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The backbone's state dict from a Lightning checkpoint (``model.`` prefix removed)."""
    sd = ckpt["state_dict"]
    return {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}


def load_checkpoint(
    path: str | os.PathLike, spec: BackboneSpec | None = None, model: Backbone | None = None
) -> Backbone:
    """Rebuild the model from the spec inside a checkpoint and load its weights (eval mode).

    With ``spec`` (or ``model``) given, the checkpoint must describe that architecture;
    otherwise :class:`DwrError` names both. With ``model``, weights are loaded into it.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt["dwr"]
    try:
        saved = BackboneSpec.from_dict(meta["spec"])
    except (KeyError, DwrError) as exc:
        raise DwrError(f"checkpoint {path} holds an invalid model spec: {exc}") from None
    want = model.spec if model is not None else spec
    if want is not None and want != saved:
        raise DwrError(
            f"checkpoint {path} is for {describe(saved)}, not {describe(want)}; "
            "pick the checkpoint of that architecture or rebuild the model from the checkpoint"
        )
    net = model if model is not None else build(saved)
    if meta.get("real_weights"):
        set_real_weights(net, True)
    try:
        net.load_state_dict(model_state(ckpt), strict=True)
    except RuntimeError as exc:
        raise DwrError(
            f"checkpoint {path} does not match its own spec {describe(saved)}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return net.eval()
