"""The latency model against the engine: predicted vs measured, width multiples, birealnet18.

    python benchmarks/latency.py [--profile] [--rounds 3] [--repeats 30] [--multiple 64]
                                 [--sections models multiple birealnet18]
                                 [--out benchmarks/results/latency.json]

- ``models``: every registered backbone, 1 thread, batch 1: the latency model's prediction
  (:mod:`dwr.cost.latency`, from the ``dwr profile`` table) against the engine's measured
  end-to-end time (goal: within 10%).
- ``multiple``: each ``*_dwr`` backbone scaled to its original's BOPs with widths of any
  size and with widths in multiples of ``--multiple`` (or the largest of 64/32/16/8 that can
  meet the budget): what whole packed words save at equal BOPs.
- ``birealnet18``: the original, the DWR authors' backbone (with their stem adapter), the same
  widths rounded to ``--multiple``, those widths scaled by one factor to the original's
  predicted latency (and to 0.8x of it), on 1 and 2 threads; BOPs and activations of each.

Every engine is timed in ``--rounds`` interleaved rounds (each model, each thread count, then
again) and keeps its best: the host may be shared, so one burst of load cannot decide a ratio.
``sum_of_op_min_ms`` adds up each op's own minimum (an undisturbed run). The host's load
average is recorded with every section. ``--profile`` recalibrates first (``dwr profile``'s
table in the user cache; about a minute per thread count) so the table and the timings come
from the same minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
import torch

import dwr.engine as engine
from dwr.backbones import BackboneSpec, create_model, get_spec, list_models
from dwr.cost import latency
from dwr.engine import profile
from dwr.engine.bench import measure, op_profile
from dwr.errors import DwrError
from dwr.files import atomic_write_json
from dwr.reshape.budget import find_width_scale, metric_value, spec_cost
from dwr.reshape.naive import round_to_multiple

GOAL = 0.10  # |predicted / measured - 1|
#: A grid point of the profile timed once per round: how far this host's speed drifts.
REFERENCE = {"k": 3, "stride": 1, "words": 1, "out": 64, "oh": 28}


def reference_ms() -> float:
    """Best time of the :data:`REFERENCE` binary conv now (1 thread, about 0.1 s)."""
    return profile.time_binary(REFERENCE, np.random.default_rng(0), 0.1)


def table_reference_ms(table: latency.LatencyTable) -> float | None:
    """The calibration's time of the same point."""
    rows = [r for r in table.data["binary_conv"] if all(r[k] == v for k, v in REFERENCE.items())]
    return rows[0]["ms"] if rows else None


def load_tables(threads: list[int], recalibrate: bool) -> dict[int, latency.LatencyTable]:
    """The latency table per thread count: this machine's, measured first with ``recalibrate``
    (and saved, as ``dwr profile`` does: the latency budget reads it)."""
    for n in threads if recalibrate else []:
        table = {**profile.measure("full", n), "key": latency.runtime_key(n)}
        latency.save_table({**table, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return {n: latency.load_table(n) for n in threads}


def time_engines(
    specs: dict[str, BackboneSpec],
    threads: list[int],
    rounds: int,
    repeats: int,
    probes: list[float] | None = None,
) -> dict[str, dict[int, dict[str, float]]]:
    """Best-of-rounds engine time (ms, batch 1) of each spec on each thread count (appends
    each round's :func:`reference_ms` to ``probes``)."""
    engines, inputs = {}, {}
    for name, spec in specs.items():
        engines[name] = engine.convert(create_model(spec).eval())
        inputs[name] = torch.randn(1, *spec.input_size)
    best: dict[str, dict[int, dict[str, float]]] = {n: {} for n in specs}
    for _ in range(rounds):
        if probes is not None:
            engine.set_num_threads(1)
            probes.append(reference_ms())
        for name in specs:
            for n in threads:
                engine.set_num_threads(n)
                eng, x = engines[name], inputs[name]
                t = measure(lambda e=eng, x=x: e(x), repeats)
                ops = sum(op_profile(eng, x, max(3, repeats // 3)).values())
                old = best[name].get(n)
                cur = {"min_ms": t.min_ms, "median_ms": t.median_ms, "sum_of_op_min_ms": ops}
                best[name][n] = cur if old is None else {k: min(old[k], cur[k]) for k in cur}
    engine.set_num_threads(1)
    return best


def _costs(spec: BackboneSpec) -> dict[str, Any]:
    t = spec_cost(spec).totals()
    return {
        "depths": list(spec.depths),
        "widths": list(spec.widths),
        "bops": t["bops"],
        "flops": t["flops"],
        "activations": t["activations"],
    }


def compare(
    specs: dict[str, BackboneSpec],
    tables: dict[int, latency.LatencyTable],
    rounds: int,
    repeats: int,
    probes: list[float] | None = None,
) -> list[dict[str, Any]]:
    """Predicted against measured latency of ``specs`` on each table's thread count."""
    threads = sorted(tables)
    measured = time_engines(specs, threads, rounds, repeats, probes)
    rows = []
    for name, spec in specs.items():
        row: dict[str, Any] = {"name": name, **_costs(spec)}
        for n in threads:
            pred = latency.predict_ms(spec, table=tables[n])
            m = measured[name][n]
            row[f"t{n}"] = {
                "predicted_ms": pred,
                "measured_ms": m["min_ms"],
                "measured_median_ms": m["median_ms"],
                "sum_of_op_min_ms": m["sum_of_op_min_ms"],
                "error": pred / m["min_ms"] - 1,
            }
        rows.append(row)
    return rows


def models_section(tables, rounds: int, repeats: int, names: list[str] | None = None) -> dict:
    """Every registered backbone (or ``names``), on 1 thread; one the latency model or the
    engine cannot handle is listed under ``skipped`` with the reason."""
    specs, skipped = {}, {}
    for n in names or list_models():
        try:
            latency.predict_ms(get_spec(n), table=tables[1])
            engine.convert(create_model(get_spec(n)).eval())
            specs[n] = get_spec(n)
        except DwrError as exc:
            skipped[n] = str(exc)
    probes: list[float] = []
    rows = compare(specs, {1: tables[1]}, rounds, repeats, probes)
    errors = [abs(r["t1"]["error"]) for r in rows]
    op_errors = [abs(r["t1"]["predicted_ms"] / r["t1"]["sum_of_op_min_ms"] - 1) for r in rows]
    return {
        "rows": rows,
        "skipped": skipped,
        "max_abs_error": max(errors),
        "within_goal": sum(e <= GOAL for e in errors),
        "within_goal_vs_sum_of_op_min": sum(e <= GOAL for e in op_errors),
        "reference": {
            "op": REFERENCE,
            "table_ms": table_reference_ms(tables[1]),
            "per_round_ms": probes,
        },
    }


def _scaled_to(spec: BackboneSpec, budget: float, metric: str, multiple: int) -> BackboneSpec:
    return find_width_scale(spec, budget, metric, width_multiple=multiple)[1]


def multiple_section(tables, multiple: int, rounds: int, repeats: int) -> dict:
    """DWR backbones at their original's BOPs: widths of any size vs multiples."""
    names = list_models()
    pairs = [(n, n.removesuffix("_dwr")) for n in names if n.endswith("_dwr") and n[:-4] in names]
    specs, meta = {}, []
    for dwr_name, orig_name in pairs:
        budget = metric_value(get_spec(orig_name), "bops")
        spec = get_spec(dwr_name)
        free = _scaled_to(spec, budget, "bops", 1).replace(name=f"{dwr_name}@bops")
        for m in sorted({multiple, 64, 32, 16, 8}, reverse=True):
            if m > multiple:
                continue
            try:
                packed = _scaled_to(spec, budget, "bops", m)
                break
            except DwrError:
                continue
        else:
            continue
        packed = packed.replace(name=f"{dwr_name}@bops_m{m}")
        specs[free.name], specs[packed.name] = free, packed
        meta.append((dwr_name, free.name, packed.name, m))
    rows = {r["name"]: r for r in compare(specs, {1: tables[1]}, rounds, repeats)}
    out = []
    for dwr_name, a, b, m in meta:
        ra, rb = rows[a], rows[b]
        out.append(
            {
                "model": dwr_name,
                "multiple": m,
                "any": ra,
                "packed": rb,
                "measured_saving": 1 - rb["t1"]["measured_ms"] / ra["t1"]["measured_ms"],
                "predicted_saving": 1 - rb["t1"]["predicted_ms"] / ra["t1"]["predicted_ms"],
            }
        )
    return {"rows": out}


def birealnet18_specs(tables, multiple: int) -> dict[str, BackboneSpec]:
    """The section's backbones (see the module docstring)."""
    original, authors = get_spec("birealnet18"), get_spec("birealnet18_dwr")
    budget = latency.predict_ms(original, table=tables[1])
    rounded = authors.replace(
        widths=tuple(round_to_multiple(w, multiple) for w in authors.widths),
        name=f"birealnet18_dwr_m{multiple}",
    )
    specs = {"original": original, "dwr (authors)": authors, f"dwr m{multiple}": rounded}
    for frac in (1.0, 0.8):  # the search asks the latency model (this machine's table)
        spec = _scaled_to(rounded, budget * frac, "latency", multiple)
        specs[f"dwr m{multiple} @{frac:g}x latency"] = spec.replace(
            name=f"birealnet18_dwr_m{multiple}_lat{frac:g}"
        )
    return specs


def birealnet18_section(tables, multiple: int, rounds: int, repeats: int) -> dict:
    specs = birealnet18_specs(tables, multiple)
    rows = compare(specs, tables, rounds, repeats)
    base = rows[0]
    for r in rows:
        for n in tables:
            r[f"t{n}"]["measured_ratio"] = r[f"t{n}"]["measured_ms"] / base[f"t{n}"]["measured_ms"]
            r[f"t{n}"]["predicted_ratio"] = (
                r[f"t{n}"]["predicted_ms"] / base[f"t{n}"]["predicted_ms"]
            )
    return {"rows": rows}


# -- printing ---------------------------------------------------------------------------------
def _print_rows(rows: list[dict], threads: list[int]) -> None:
    head = f"{'backbone':34s} {'widths':>22s} {'BOPs':>7s} {'act':>6s}"
    for n in threads:
        head += f" | {n}t pred   meas    err  op-sum    err"
    print(head)
    for r in rows:
        line = f"{r['name']:34s} {','.join(map(str, r['widths'])):>22s} "
        line += f"{r['bops'] / 1e9:6.3f}G {r['activations'] / 1e6:5.2f}M"
        for n in threads:
            t = r[f"t{n}"]
            line += f" | {t['predicted_ms']:7.3f} {t['measured_ms']:7.3f} {t['error']:+6.1%}"
            ops_err = t["predicted_ms"] / t["sum_of_op_min_ms"] - 1
            line += f" {t['sum_of_op_min_ms']:7.3f} {ops_err:+6.1%}"
            if "measured_ratio" in t:
                line += f" ({t['measured_ratio']:.2f}x)"
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("benchmarks", "results", "latency.json"))
    ap.add_argument("--sections", nargs="+", default=["models", "multiple", "birealnet18"])
    ap.add_argument("--models", nargs="+", help="models section: these backbones only")
    ap.add_argument("--multiple", type=int, default=64, help="width multiple (64)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--profile", action="store_true", help="recalibrate first (in memory)")
    args = ap.parse_args(argv)
    try:
        threads = [1, 2] if "birealnet18" in args.sections else [1]
        t0 = time.time()
        tables = load_tables(threads, args.profile)
        result: dict[str, Any] = {
            "cpu": latency.cpu_model(),
            "engine": latency.engine_version(),
            "kernel_isa": engine.kernel_isa(),
            "profiled_now": args.profile,
            "tables": {n: t.data.get("created") for n, t in tables.items()},
            "profile_seconds": round(time.time() - t0, 1),
            "rounds": args.rounds,
            "repeats": args.repeats,
            "goal": GOAL,
        }
        runners = {
            "models": lambda: models_section(tables, args.rounds, args.repeats, args.models),
            "multiple": lambda: multiple_section(tables, args.multiple, args.rounds, args.repeats),
            "birealnet18": lambda: birealnet18_section(
                tables, args.multiple, args.rounds, args.repeats
            ),
        }
        for name in args.sections:
            if name not in runners:
                raise DwrError(f"unknown section {name!r}; choose from {sorted(runners)}")
            load_before = os.getloadavg()
            t = time.time()
            section = runners[name]()
            section["load_average"] = [round(v, 2) for v in load_before + os.getloadavg()]
            section["seconds"] = round(time.time() - t, 1)
            result[name] = section
            print(f"\n== {name} (load average {section['load_average']}) ==")
            if name == "multiple":
                for r in section["rows"]:
                    print(
                        f"{r['model']:22s} m{r['multiple']:<3d} widths {r['any']['widths']} -> "
                        f"{r['packed']['widths']}: BOPs {r['any']['bops'] / 1e9:.3f}G -> "
                        f"{r['packed']['bops'] / 1e9:.3f}G, measured "
                        f"{r['any']['t1']['measured_ms']:.3f} -> "
                        f"{r['packed']['t1']['measured_ms']:.3f} ms ({r['measured_saving']:+.1%}; "
                        f"predicted {r['predicted_saving']:+.1%})"
                    )
            else:
                _print_rows(section["rows"], [1, 2] if name == "birealnet18" else [1])
            if name == "models":
                for n, why in section["skipped"].items():
                    print(f"skipped {n}: {why}")
                ref = section["reference"]
                print(
                    "drift: the reference conv (64->64, 28x28) took "
                    + ", ".join(f"{v:.4f}" for v in ref["per_round_ms"])
                    + f" ms in the rounds; {ref['table_ms'] or float('nan'):.4f} in the table"
                )
                print(
                    f"within {GOAL:.0%}: {section['within_goal']}/{len(section['rows'])} "
                    f"(vs the sum of op minima: {section['within_goal_vs_sum_of_op_min']}); "
                    f"max |error| {section['max_abs_error']:.1%}"
                )
    except DwrError as exc:
        print(f"latency benchmark: error: {exc}", file=sys.stderr)
        return 2
    atomic_write_json(args.out, result, indent=1)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
