"""Checkpoints that survive crashes, describe themselves and detect corruption.

A checkpoint is one file (Lightning's dict) written with :func:`dwr.files.atomic_write`
(temporary file, fsync, rename), so ``last.ckpt`` and ``best.ckpt`` are always either the old
or the new complete file; a full disk is a :class:`DwrError` and leaves the old file.

Besides Lightning's state (weights, optimizer, scheduler, loops, callbacks) it holds
``checkpoint["dwr"]``: the model spec, the recipe, the epoch, whether weights were
real-valued (two-step, step 1), the RNG states and a SHA-256 ``checksum`` of the spec and
the state dict. Loading refuses a mismatch (a flipped byte) and non-finite weights; a
checkpoint from before checksums loads with an :class:`UnverifiedCheckpoint` warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dwr.backbones import Backbone, BackboneSpec, build
from dwr.errors import DwrError, DwrWarning
from dwr.files import atomic_write, atomic_write_json, open_regular
from dwr.limits import check_memory

FORMAT = 1


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` into memory, then :func:`dwr.files.atomic_write` the bytes, so a
    serialiser's own wrapping of I/O errors (``torch.save`` raises ``RuntimeError`` on a
    full disk) never hides an ``OSError``: every write failure is a :class:`DwrError`."""
    buf = io.BytesIO()
    write(buf)
    atomic_write(path, buf.getvalue())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_json(path, obj)


# -- integrity ----------------------------------------------------------------------------------
class UnverifiedCheckpoint(DwrWarning):
    """A checkpoint without a checksum was loaded."""


def checksum(ckpt: dict[str, Any]) -> str:
    """SHA-256 of the model spec (canonical JSON) and of every tensor of the state dict
    (name, dtype, shape and bytes, in sorted name order)."""
    h = hashlib.sha256()
    h.update(json.dumps(ckpt["dwr"]["spec"], sort_keys=True).encode())
    for name in sorted(ckpt["state_dict"]):
        t = ckpt["state_dict"][name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def seal(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Add ``ckpt["dwr"]["checksum"]`` (see :func:`checksum`) before writing."""
    if isinstance(ckpt.get("dwr"), dict) and "spec" in ckpt["dwr"]:
        ckpt["dwr"]["checksum"] = {"sha256": checksum(ckpt)}
    return ckpt


def _check_structure(p: Path, ckpt: Any) -> None:
    if not isinstance(ckpt, dict) or "dwr" not in ckpt or "state_dict" not in ckpt:
        raise DwrError(f"{p} is not a dwr checkpoint (it has no model spec); was it made by dwr?")
    meta, sd = ckpt["dwr"], ckpt["state_dict"]
    if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict):
        raise DwrError(
            f"checkpoint {p} is malformed: its 'dwr' entry must be a mapping holding the "
            f"model spec, got {type(meta).__name__}"
        )
    if not isinstance(sd, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
    ):
        raise DwrError(
            f"checkpoint {p} is malformed: its state dict must map names to tensors, got "
            f"{type(sd).__name__}"
        )


def verify(p: Path, ckpt: dict[str, Any]) -> None:
    """Refuse a checksum mismatch or non-finite weights; warn on an unverified old file."""
    stored = ckpt["dwr"].get("checksum")
    if stored is None:
        warnings.warn(
            f"checkpoint {p} has no checksum (written by an older dwr): its weights are unverified",
            UnverifiedCheckpoint,
            stacklevel=3,
        )
    elif not isinstance(stored, dict) or stored.get("sha256") != checksum(ckpt):
        raise DwrError(
            f"checkpoint {p} is corrupt: its tensors or spec do not match its checksum; "
            "use another checkpoint (e.g. best.ckpt or last.ckpt of the same run) or retrain"
        )
    for name, t in ckpt["state_dict"].items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DwrError(
                f"checkpoint {p} holds non-finite weights (NaN or inf in {name}); "
                "use an earlier checkpoint or retrain with a lower --lr"
            )


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict; :class:`DwrError` naming the file if missing, truncated, alien,
    malformed, corrupt (checksum mismatch) or holding non-finite weights."""
    p = Path(path)
    if not p.exists():
        raise DwrError(f"checkpoint {p} does not exist")
    if not p.is_file():  # a directory, FIFO or device: torch.load could block or never end
        raise DwrError(f"checkpoint {p} is not a regular file")
    try:
        with open_regular(p, "checkpoint") as f:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
    except DwrError:
        raise
    except Exception as exc:  # zip/pickle errors from a truncated or foreign file
        refused = _refused_code(exc)
        if refused:
            raise DwrError(
                f"refusing checkpoint {p}: it refers to {refused}, which a dwr checkpoint never "
                "holds (the file may be malicious); it was not loaded: use a checkpoint dwr wrote"
            ) from None
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DwrError(
            f"checkpoint {p} is truncated or corrupt ({msg}); use another checkpoint "
            "(e.g. best.ckpt or last.ckpt of the same run) or retrain"
        ) from None
    _check_structure(p, ckpt)
    verify(p, ckpt)
    return ckpt


def _refused_code(exc: Exception) -> str | None:
    """What torch's ``weights_only`` unpickler refused to import or call (e.g. ``GLOBAL
    builtins.print``), or None if ``exc`` is not such a refusal."""
    text = str(exc)
    if not isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" not in text:
        return None
    found = re.search(r"Unsupported (?:global|operand)[^:]*: (.{1,120}?)(?: was not|\n|$)", text)
    return found.group(1).strip() if found else "code"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: tmp file + rename on save, clear errors on load."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        atomic_write_bytes(path, lambda f: torch.save(seal(checkpoint), f))

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
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # DwrError is a ValueError
        raise DwrError(f"checkpoint {path} holds an invalid model spec: {exc}") from None
    want = model.spec if model is not None else spec
    if want is not None and want != saved:
        raise DwrError(
            f"checkpoint {path} is for {describe(saved)}, not {describe(want)}; "
            "pick the checkpoint of that architecture or rebuild the model from the checkpoint"
        )
    if model is None:
        check_memory(saved, saved.input_size)  # a spec from a file: estimate before building
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
