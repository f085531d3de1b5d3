"""Training recipes: named configurations that a YAML file or ``--set KEY=VALUE`` overrides.

- ``one-step`` (IR-Net / DWR on CIFAR): binary weights and activations from the start, SGD with
  momentum 0.9, cosine schedule, weight decay on conv/linear weights only.
- ``two-step`` (ReActNet): step 1 binarizes activations only (real weights, weight decay 1e-5);
  step 2 binarizes weights too, starting from step 1's weights (weight decay 0). Adam, with a
  cosine or linear decay to 0.

Schedules are per optimisation step: ``lr_t = lr * f(t / T)`` with ``f(p) = (1 + cos(pi p)) / 2``
(cosine) or ``f(p) = 1 - p`` (linear) after ``warmup_epochs`` of linear warm-up.
Defaults may depend on the data set (``digits`` gets a short small-data schedule).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

from dwr.errors import DwrError
from dwr.limits import MAX_BATCH, MAX_EPOCHS, MAX_WORKERS

BASE: dict[str, Any] = {
    "steps": 1,  # 1: one-step; 2: two-step (ReActNet)
    "epochs": 200,  # per step
    "batch_size": 128,
    "eval_batch_size": 256,
    "optimizer": "sgd",  # sgd | adam
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,  # on conv/linear weights; in two-step: step 2's
    "step1_weight_decay": 1e-5,  # two-step only
    "schedule": "cosine",  # cosine | linear | constant
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "distill_weight": 1.0,  # with a teacher: (1 - w) * CE + w * KL(teacher || student)
    "teacher_epochs": 0,  # teacher NAME: epochs to train it (0: the recipe's epochs)
    "train_batches": 0,  # batches per epoch (0: the whole training split)
    "grad_clip": 0.0,  # clip the gradient norm; 0 disables
    "workers": 0,  # DataLoader worker processes
    "compile": False,  # torch.compile the model's forward
    "compile_mode": "default",  # torch.compile mode: default | reduce-overhead | max-autotune
    "precision": "auto",  # auto (bf16-mixed on CUDA, 32 elsewhere) | 32 | bf16-mixed | 16-mixed
    # auto: on CUDA, in-memory training data lives on the GPU and is augmented there
    "data_on_device": "auto",  # auto | on | off
}

RECIPES: dict[str, dict[str, Any]] = {
    "one-step": {
        "steps": 1,
        "epochs": 400,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "cosine",
    },
    "two-step": {
        "steps": 2,
        "epochs": 256,
        "batch_size": 256,
        "optimizer": "adam",
        "lr": 5e-4,
        "weight_decay": 0.0,
        "step1_weight_decay": 1e-5,
        "schedule": "linear",
    },
}

#: Per data set changes to each recipe's defaults.
DATASET_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "digits": {
        # 1,437 training images: SGD needs hundreds of epochs to get a BNN off the ground
        # here, Adam a few (see docs/training.md), so the small-data schedule uses Adam.
        "one-step": {
            "epochs": 10,
            "batch_size": 32,
            "optimizer": "adam",
            "lr": 5e-3,
            "weight_decay": 0.0,
        },
        "two-step": {"epochs": 6, "batch_size": 32, "lr": 5e-3},
    },
    "imagefolder": {
        "one-step": {"epochs": 120, "batch_size": 256, "workers": min(8, os.cpu_count() or 1)},
        "two-step": {"workers": min(8, os.cpu_count() or 1)},
    },
}

CHOICES = {
    "optimizer": ("sgd", "adam"),
    "schedule": ("cosine", "linear", "constant"),
    "steps": (1, 2),
    "precision": ("auto", "32", "bf16-mixed", "16-mixed"),
    "data_on_device": ("auto", "on", "off"),
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(value, str):
        return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"  # --set precision=32 arrives from YAML as the number 32
    shown = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    raise DwrError(f"recipe key {key!r} must be a {type(default).__name__}, got {shown[:80]}")


def _apply(cfg: dict[str, Any], changes: dict[str, Any], source: str) -> None:
    if not isinstance(changes, dict):
        raise DwrError(f"{source} must be a mapping of recipe keys, got {type(changes).__name__}")
    for key, value in changes.items():
        if key not in BASE:
            raise DwrError(
                f"unknown recipe key {key!r} in {source}; valid keys: {', '.join(sorted(BASE))}"
            )
        cfg[key] = _coerce(key, value, BASE[key])


def load_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML recipe: a mapping of recipe keys, optionally with ``base: one-step|two-step``."""
    import yaml

    from dwr.files import read_text

    p = Path(path)
    try:
        data = yaml.safe_load(read_text(p, "recipe file"))
    except FileNotFoundError:
        raise DwrError(f"recipe file {p} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        raise DwrError(f"cannot read recipe file {p}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DwrError(f"recipe file {p} must hold a mapping of recipe keys")
    return data


def resolve_recipe(
    recipe: str | dict[str, Any] = "one-step",
    dataset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full configuration: base <- recipe <- data set defaults <- file/dict <- overrides.

    ``recipe`` is a recipe name, a path to a YAML file, or a dict (both may name a ``base``).
    Unknown keys and values of the wrong type raise :class:`DwrError` naming the key.
    """
    source = "recipe"
    extra: dict[str, Any] = {}
    if isinstance(recipe, dict):
        extra = dict(recipe)
        name = extra.pop("base", None) or extra.pop("name", None) or "one-step"
    elif recipe in RECIPES:
        name = recipe
    elif isinstance(recipe, str | os.PathLike) and str(recipe).endswith((".yaml", ".yml")):
        source = f"recipe file {recipe}"
        extra = load_recipe_file(recipe)
        name = extra.pop("base", None) or "one-step"
    else:
        raise DwrError(
            f"unknown recipe {recipe!r}; choose one of {', '.join(list_recipes())} "
            "or give a YAML file"
        )
    if name not in RECIPES:
        raise DwrError(f"unknown base recipe {name!r}; choose one of {', '.join(list_recipes())}")
    cfg = copy.deepcopy(BASE)
    cfg.update(RECIPES[name])
    cfg.update(DATASET_DEFAULTS.get(dataset or "", {}).get(name, {}))
    _apply(cfg, extra, source)
    _apply(cfg, dict(overrides or {}), "overrides")
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise DwrError(f"recipe key {key!r} must be one of {list(allowed)}, got {cfg[key]!r}")
    check_ranges(cfg)
    cfg["recipe"] = name
    return cfg


#: key -> (lowest, highest, whether the lowest is allowed) for every numeric recipe key.
RANGES: dict[str, tuple[float, float, bool]] = {
    "epochs": (1, MAX_EPOCHS, True),
    "batch_size": (1, MAX_BATCH, True),
    "eval_batch_size": (1, MAX_BATCH, True),
    "lr": (0.0, 10.0, False),
    "momentum": (0.0, 1.0, True),
    "weight_decay": (0.0, 1.0, True),
    "step1_weight_decay": (0.0, 1.0, True),
    "warmup_epochs": (0.0, MAX_EPOCHS, True),
    "label_smoothing": (0.0, 0.999, True),
    "distill_weight": (0.0, 1.0, True),
    "teacher_epochs": (0, MAX_EPOCHS, True),
    "train_batches": (0, 10**9, True),
    "grad_clip": (0.0, 1e9, True),
    "workers": (0, MAX_WORKERS, True),
}


def check_ranges(cfg: dict[str, Any]) -> None:
    """Every numeric key finite and in its range (:data:`RANGES`), else a :class:`DwrError`."""
    for key, (lo, hi, lo_ok) in RANGES.items():
        value = cfg[key]
        if not math.isfinite(value) or value > hi or value < lo or (value == lo and not lo_ok):
            low = f"[{lo:g}" if lo_ok else f"({lo:g}"
            raise DwrError(f"recipe key {key!r} must be in {low}, {hi:g}], got {value!r}")


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.05", "epochs=3"]`` -> ``{"lr": 0.05, "epochs": 3}`` (values parsed as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DwrError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out
