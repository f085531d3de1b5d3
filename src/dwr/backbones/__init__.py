"""Backbones built from a spec: the spec type, blocks, the factory and the model registry.

Names are resolved on first use (module ``__getattr__``), so ``dwr.backbones.spec`` and the
registry's spec lookups import without PyTorch; building a model imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Backbone": "dwr.backbones.model",
    "build": "dwr.backbones.model",
    "create_model": "dwr.backbones.registry",
    "get_spec": "dwr.backbones.registry",
    "list_models": "dwr.backbones.registry",
    "register_model": "dwr.backbones.registry",
    "BackboneSpec": "dwr.backbones.spec",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'dwr.backbones' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "Backbone",
    "BackboneSpec",
    "build",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
