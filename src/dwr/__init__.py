"""dwr: fast and accurate binary neural networks by Depth-Width Reshaping (AAAI 2023).

The top-level names are resolved on first use, so ``import dwr.engine`` (running a saved
``.dwre`` file) needs only NumPy and the compiled kernels, not PyTorch.
"""

from __future__ import annotations

from typing import Any

from dwr.errors import DwrError

__version__ = "0.1.0"

_FROM_BACKBONES = ("BackboneSpec", "build", "create_model", "get_spec", "list_models")


def __getattr__(name: str) -> Any:
    if name in _FROM_BACKBONES:
        import dwr.backbones

        value = getattr(dwr.backbones, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dwr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_BACKBONES))


__all__ = ["BackboneSpec", "DwrError", "build", "create_model", "get_spec", "list_models"]
