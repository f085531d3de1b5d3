"""The ``dwr run`` report: one row per network (original, naive, dwr) as JSON, Markdown, PNG.

Files are written atomically with :mod:`dwr.files` (``report.json`` last), so a report that
exists is complete.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

from dwr.cost.display import budget_text, si
from dwr.files import atomic_write, atomic_write_json

ROW_KEYS = ("name", "depths", "widths", "bops", "flops", "ops", "activations", "params", "top1")
REPORT_FILES = ("report.md", "report.png", "report.json")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (:func:`dwr.files.atomic_write_json`)."""
    atomic_write_json(path, obj)


def _si(n: float) -> str:
    return si(n, 2)


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document with one table."""
    metric = report["budget_metric"]
    label = {"bops": "BOPs", "ops": "OPs"}.get(metric, metric)
    lines = [
        f"# DWR report: {report['model']} on {report['dataset']}",
        "",
        f"Reshaping factor {report['factor']:g}, over-parameterisation {report['overparam']:g}, "
        f"recipe `{report['recipe']}`; budget: the original's {label} "
        f"({budget_text(metric, report['budget'], 2)}).",
        "",
        "| network | depths | widths | BOPs | FLOPs | OPs | activations | params | top-1 (%) "
        f"| {label} vs budget |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['name']} | {r['depths']} | {r['widths']} | {_si(r['bops'])} | "
            f"{_si(r['flops'])} | {_si(r['ops'])} | {_si(r['activations'])} | "
            f"{_si(r['params'])} | {r['top1']:.2f} | {r[metric] / report['budget']:.3f} |"
        )
    p = report["prune"]
    how = (
        "the clustering widths met the budget directly"
        if p["width_scale"] == 1.0
        else f"no eps landed within ±3%, so the over-budget clustering widths {p['raw_widths']} "
        f"were scaled by {p['width_scale']:.4f}"
    )
    if (report.get("cluster") or {}).get("eps") is not None:  # a fixed eps: widths by share
        how = f"these widths were scaled by {p['width_scale']:.4f} to the budget"
    if p["raw_widths"] == p["from_widths"]:
        how += (
            ". DBSCAN merged no channels at this eps, so the widths keep the pre-trained "
            "network's proportions; a larger `--eps`, or `--eps-scale stage --eps auto`, lets "
            "the clustering reallocate them"
        )
    if report.get("dwr_same_as_naive"):
        how += ". The result is the `naive` network itself, so the `dwr` row reuses its run"
    lines += [
        "",
        f"Pruning: the pre-trained network (widths {p['from_widths']}, "
        f"{report['pretrain']['epochs']} epochs, top-1 {report['pretrain']['top1']:.2f}%) was "
        f"clustered on {report['samples']} images with DBSCAN (cosine distance); eps "
        f"{p['eps']:.4g} gave widths {p['raw_widths']}; {how}.",
        "",
        "Rows `original`, `naive` and `dwr` are trained from scratch with the same recipe "
        f"({report['epochs']} epochs); top-1 is on the test split.",
        "",
        "![accuracy against cost](report.png)",
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path | BinaryIO) -> None:
    """Top-1 against OPs and against activations for every row, saved as a PNG (to a path or
    a binary file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "ops", "OPs"), (axes[1], "activations", "activations")):
        for r in report["rows"]:
            ax.scatter(r[key], r["top1"], s=60)
            ax.annotate(r["name"], (r[key], r["top1"]), textcoords="offset points", xytext=(6, 4))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.margins(x=0.2, y=0.15)
        ax.set_xlabel(f"{label} per image")
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{report['model']} on {report['dataset']}: original vs naive vs DWR")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def remove_report(out: Path) -> None:
    """Delete any previous report so a failed run never leaves one looking complete."""
    for name in REPORT_FILES:
        for p in (out / name, out / (name + ".tmp")):
            if p.exists():
                p.unlink()


def write_report(report: dict[str, Any], out: Path) -> None:
    """report.md, report.png, then report.json, each written atomically."""
    out = Path(out)
    png = io.BytesIO()
    plot(report, png)  # drawn first: a plotting error leaves no partial report
    atomic_write(out / "report.md", markdown(report))
    atomic_write(out / "report.png", png.getvalue())
    write_json(out / "report.json", report)
