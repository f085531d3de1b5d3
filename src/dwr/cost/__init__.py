"""BOPs / FLOPs / OPs / parameters / activations of a backbone, per layer and in total.

The counter (PyTorch) is imported on first use, so ``dwr.cost.display`` and
``dwr.cost.latency`` stay importable without loading torch (the CLI's start-up, the runtime).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CostReport", "LayerCost", "count_cost"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dwr.cost import counter

        return getattr(counter, name)
    raise AttributeError(f"module 'dwr.cost' has no attribute {name!r}")
