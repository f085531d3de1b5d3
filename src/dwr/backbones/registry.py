"""The model registry: each public model is a tiny builder that returns its spec (timm style).

``create_model(name, **overrides)`` looks the builder up, applies overrides (``depths``,
``widths``, ``num_classes``, ``binary``...) and hands the spec to the one factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dwr.backbones.spec import BackboneSpec
from dwr.errors import DwrError

if TYPE_CHECKING:
    from dwr.backbones.model import Backbone

SpecBuilder = Callable[[], BackboneSpec]
_MODELS: dict[str, SpecBuilder] = {}


def register_model(fn: SpecBuilder) -> SpecBuilder:
    """Register a spec builder under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered backbones, sorted."""
    _load_families()
    return sorted(_MODELS)


def get_spec(name: str, **overrides: Any) -> BackboneSpec:
    """The spec of a registered model with ``overrides`` applied (``None`` values ignored)."""
    _load_families()
    if name not in _MODELS:
        raise DwrError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_MODELS))}")
    spec = _MODELS[name]()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "float" in changes:
        changes["binary"] = not changes.pop("float")
    return spec.replace(**changes) if changes else spec


def create_model(name: str | BackboneSpec, **overrides: Any) -> Backbone:
    """Build a registered model by name (or any spec) with optional overrides."""
    from dwr.backbones.model import build  # PyTorch only when a model is built

    if isinstance(name, BackboneSpec):
        spec = name.replace(**overrides) if overrides else name
    else:
        spec = get_spec(name, **overrides)
    return build(spec)


def _load_families() -> None:
    # Importing the family modules runs their @register_model decorators.
    from dwr.backbones.units import load_families

    load_families()
