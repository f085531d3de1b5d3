"""Cost numbers as people read them: SI counts (``1.676G``) and budgets with their unit."""

from __future__ import annotations


def si(n: float, digits: int = 3) -> str:
    """``n`` with a G/M/K suffix and ``digits`` decimals (plain integers below 1000)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return f"{n:.0f}"


def budget_text(metric: str, value: float, digits: int = 3) -> str:
    """A budget in its unit: ``0.823 ms predicted`` for latency, else an SI count."""
    return f"{value:.3f} ms predicted" if metric == "latency" else si(value, digits)
