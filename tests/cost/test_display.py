"""Cost numbers in reports and CLI lines: SI counts, and a latency budget in milliseconds."""

from dwr.cost.display import budget_text, si
from dwr.reshape.report import markdown


def test_si_suffixes_and_digits():
    assert si(1_676_000_000) == "1.676G"
    assert si(40_100_000, 2) == "40.10M"
    assert si(443_000) == "443.000K"
    assert si(999) == "999"


def test_a_latency_budget_reads_in_ms_not_as_a_count():
    assert budget_text("latency", 0.8234) == "0.823 ms predicted"
    assert budget_text("bops", 40_100_000) == "40.100M"


def _report(metric: str, budget: float) -> dict:
    row = {"name": "dwr", "depths": [1], "widths": [8], "bops": 1e6, "flops": 1e3, "ops": 2e4,
           "activations": 1e3, "params": 1e3, "top1": 50.0, "latency": 0.8}  # fmt: skip
    prune = {"width_scale": 1.0, "raw_widths": [8], "from_widths": [12], "eps": 0.1}
    return {"model": "m", "dataset": "d", "factor": 3, "overparam": 1.5, "recipe": "one-step",
            "budget_metric": metric, "budget": budget, "rows": [row], "prune": prune,
            "pretrain": {"epochs": 1, "top1": 40.0}, "samples": 16, "epochs": 1}  # fmt: skip


def test_run_report_states_a_latency_budget_in_ms():
    text = markdown(_report("latency", 0.8234))
    assert "budget: the original's latency (0.823 ms predicted)" in text
    assert "| 0.972 |" in text  # the row's latency / budget
    assert "(1)" not in text
