"""BOPs / FLOPs / OPs / parameters / activations of a backbone, per layer and in total."""

from dwr.cost.counter import CostReport, LayerCost, count_cost

__all__ = ["CostReport", "LayerCost", "count_cost"]
