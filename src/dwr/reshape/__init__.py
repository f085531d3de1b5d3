"""Depth-width reshaping: naive reshaping, budgets, and clustering-based pruning."""

from dwr.reshape.budget import (
    METRICS,
    metric_value,
    resolve_budget,
    scale_to_budget,
    spec_cost,
)
from dwr.reshape.cluster import EpsSearch, cluster_width, search_eps, widths_for_eps
from dwr.reshape.features import stage_features
from dwr.reshape.naive import naive_reshape, scale_widths
from dwr.reshape.prune import PruneResult, check_reshaped, prune

__all__ = [
    "METRICS",
    "EpsSearch",
    "PruneResult",
    "check_reshaped",
    "cluster_width",
    "metric_value",
    "naive_reshape",
    "prune",
    "resolve_budget",
    "scale_to_budget",
    "scale_widths",
    "search_eps",
    "spec_cost",
    "stage_features",
    "widths_for_eps",
]
