"""The deployment guideline: which scheme to serve, from this run's own numbers.

For each (model, gpu, mode, use case): among the schemes whose accuracy recovery is at
least the floor (default 99%), recommend the one with the most queries per dollar.
- A scheme's recovery is its lowest suite recovery (summary.csv suite rows: the ratio of
  the suite averages), over every suite or the configured ones: it must hold everywhere.
  bf16 is the baseline: 100% by definition.
- Ties in queries per dollar go to the higher recovery, then to the scheme listed first in
  the config's `schemes` (--schemes; quantstudy/core/schemeorder.py): list the simpler
  deployment first, bf16 leading.
- The runner-up is the next eligible scheme; the margin is how much more the recommended
  one serves per dollar (%). It is flagged `within_noise` when smaller than twice the
  larger run-to-run coefficient of variation of the two throughputs.
- A scheme missing from the accuracy or performance results, or below the floor, is
  listed in `excluded` with the reason, never silently dropped.
- Three modes: sync (one request at a time), async (saturated) and slo (the highest request
  rate within the use case's latency SLO, quantstudy/perf/slo.py; a scheme with no rate
  within it is excluded so). In slo mode the noise is the search's resolution: perf.csv
  gives half the relative bracket width as its CV, so a margin under the bracket
  (upper - sustained) / sustained is within noise.

The rule's entry point, also run by hand:

    results/cost.csv + results/summary.csv -> results/guideline.csv and results/guideline.md.

        python -m quantstudy.perf.guideline --cost results/cost.csv --summary results/summary.csv \\
            --floor 99 --csv /tmp/guideline.csv --md /tmp/guideline.md \\
            --schemes '["bf16", "fp8", "int8", "int4"]'

    The rule is stated in quantstudy/perf/guideline.py and in the markdown it writes.
"""

from __future__ import annotations

import json
import logging
import math

from quantstudy.core import atomic, cli
from quantstudy.core.config import BASELINE
from quantstudy.core.schemeorder import add_schemes_arg, ordered, scheme_key
from quantstudy.core.tables import read_csv, to_csv

FIELDS = [
    "model",
    "gpu",
    "mode",
    "use_case",
    "recommended",
    "served_as",
    "queries_per_dollar",
    "recovery_pct",
    "cost_reduction_vs_bf16",
    "runner_up",
    "runner_up_queries_per_dollar",
    "runner_up_recovery_pct",
    "margin_pct",
    "tie",
    "within_noise",
    "eligible",
    "excluded",
    "recovery_floor_pct",
]


def scheme_recovery(summary_rows: list[dict], suites: list[str] | None = None) -> dict:
    """{(model, scheme): (lowest suite recovery %, that suite)}; bf16 -> 100 when it has results.

    A suite whose recovery is undefined (bf16 average 0) makes the scheme's recovery None.
    """
    out: dict[tuple, tuple] = {}
    for r in summary_rows:
        if r.get("level") != "suite" or (suites and r["suite"] not in suites):
            continue
        key = (r["model"], r["scheme"])
        rec = 100.0 if r["scheme"] == BASELINE else _num(r.get("recovery_pct"))
        if key in out and out[key][0] is None:
            continue
        if rec is None or key not in out or rec < out[key][0]:
            out[key] = (rec, r["suite"])
    return out


def _num(x):
    if x is None or x == "":
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def recommend(
    cost_rows: list[dict], recovery: dict, floor_pct: float, order: list[str], support: dict | None = None
) -> list[dict]:
    """One guideline row per (model, gpu, mode, use case) in the cost table; `order` (the
    config's `schemes`) lists the schemes and breaks the last ties. `support` ({model: {gpu:
    {scheme: support}}}, the support matrix) names why a scheme has no performance result
    (not servable on that GPU) and what an eligible one is served as where emulated."""
    support = support or {}
    order_key = scheme_key(order)
    groups: dict[tuple, dict] = {}
    for c in cost_rows:
        groups.setdefault((c["model"], c["gpu"], c["mode"], c["use_case"]), {})[c["scheme"]] = c
    schemes_with_accuracy: dict[str, set] = {}
    for model, scheme in recovery:
        schemes_with_accuracy.setdefault(model, set()).add(scheme)

    rows = []
    for (model, gpu, mode, use_case), by_scheme in sorted(groups.items()):
        eligible, excluded = [], []
        for scheme in sorted(set(by_scheme) | schemes_with_accuracy.get(model, set()), key=order_key):
            c = by_scheme.get(scheme)
            rec = recovery.get((model, scheme))
            how = support.get(model, {}).get(gpu, {}).get(scheme) or {}
            if how.get("status") == "unsupported":
                excluded.append((scheme, f"not servable on {gpu} ({how.get('format')}: no vLLM kernel)"))
            elif c is not None and mode == "slo" and c.get("queries_per_dollar") is None and rec:
                excluded.append((scheme, "no request rate within the SLO"))
            elif c is None or c.get("queries_per_dollar") is None:
                excluded.append((scheme, "no performance result"))
            elif rec is None:
                excluded.append((scheme, "no accuracy result"))
            elif rec[0] is None:
                excluded.append((scheme, f"recovery undefined on {rec[1]} (bf16 scores 0)"))
            elif rec[0] < floor_pct:
                excluded.append((scheme, f"recovery {rec[0]:.2f}% on {rec[1]} < {floor_pct:g}%"))
            else:
                eligible.append((scheme, c, rec[0]))
        ranked = sorted(eligible, key=lambda e: (-e[1]["queries_per_dollar"], -e[2], order_key(e[0])))
        row = {
            "model": model,
            "gpu": gpu,
            "mode": mode,
            "use_case": use_case,
            "recovery_floor_pct": floor_pct,
            "eligible": ";".join(e[0] for e in ranked),
            "excluded": ";".join(f"{s}: {why}" for s, why in excluded),
        }
        if ranked:
            best, c, rec = ranked[0]
            how = support.get(model, {}).get(gpu, {}).get(best) or {}
            row.update(
                recommended=best,
                # what the GPU runs for it: its format, or what it is emulated as (the support matrix)
                served_as=("emulated as " if how.get("status") == "emulated" else "")
                + (how.get("served_as") or c.get("served_as") or best),
                queries_per_dollar=c["queries_per_dollar"],
                recovery_pct=rec,
                cost_reduction_vs_bf16=c.get("cost_reduction_vs_bf16"),
            )
        if len(ranked) > 1:
            nxt, c2, rec2 = ranked[1]
            q1, q2 = ranked[0][1]["queries_per_dollar"], c2["queries_per_dollar"]
            margin = (q1 / q2 - 1.0) * 100.0 if q2 else None
            cvs = [
                x for x in (ranked[0][1].get("request_throughput_cv"), c2.get("request_throughput_cv")) if x is not None
            ]
            row.update(
                runner_up=nxt,
                runner_up_queries_per_dollar=q2,
                runner_up_recovery_pct=rec2,
                margin_pct=margin,
                tie=q1 == q2,
                within_noise=(margin is not None and bool(cvs) and margin < 2 * max(cvs) * 100.0),
            )
        rows.append(row)
    return rows


def _f(x, fmt="{:.4g}"):
    return "—" if x is None else fmt.format(x)


def to_markdown(rows: list[dict], floor_pct: float, hardware: dict | None = None, *, order: list[str]) -> str:
    """guideline.md; `order` (the config's `schemes`) is the tie-break order it states."""
    tie_order = ", ".join(ordered([BASELINE, *order], order))
    out = [
        "# Deployment guideline",
        "",
        f"For each model, GPU type, serving mode and use case: the scheme with the most queries per dollar "
        f"among those whose accuracy recovery is at least **{floor_pct:g}%** of bf16 on every suite "
        "(lowest suite recovery; bf16 = 100%). Ties go to the higher recovery, then to "
        f"{tie_order} in that order (the config's `schemes`), any other "
        "scheme after them by name. The margin is how many % more queries per dollar the "
        "recommendation serves than the runner-up; *within noise* marks a margin under twice the "
        "run-to-run coefficient of variation of the throughputs. sync = one request at a time; "
        "async = continuous batching at saturation; slo = the highest request rate at which the use case's "
        "latency SLO holds (perf.csv `slo` rows; its noise is the search's bracket, not a CV). Computed from this run's perf.csv, cost.csv and "
        "summary.csv, not written by hand.",
        "",
    ]
    if hardware:
        out += ["Measured on: " + "; ".join(f"`{g}` = {h}" for g, h in sorted(hardware.items())), ""]
    for model in sorted({r["model"] for r in rows}):
        out += [
            f"## {model}",
            "",
            "| gpu | mode | use case | recommended | served as | queries/$ | recovery | vs bf16 | runner-up | margin "
            "| excluded |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["model"] == model):
            margin = _f(r.get("margin_pct"), "{:+.1f}%")
            if r.get("tie"):
                margin += " (tie)"
            elif r.get("within_noise"):
                margin += " (within noise)"
            out.append(
                f"| {r['gpu']} | {r['mode']} | {r['use_case']} | **{r.get('recommended') or 'none eligible'}** | "
                f"{r.get('served_as') or '—'} | "
                f"{_f(r.get('queries_per_dollar'), '{:,.0f}')} | {_f(r.get('recovery_pct'), '{:.2f}%')} | "
                f"{_f(r.get('cost_reduction_vs_bf16'), '{:.2f}x')} | {r.get('runner_up') or '—'} | {margin} | "
                f"{r.get('excluded') or '—'} |"
            )
        out.append("")
    return "\n".join(out)


log = logging.getLogger("guideline")


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--cost", required=True, help="cost.csv (quantstudy/perf/cost.py)")
    ap.add_argument("--summary", required=True, help="summary.csv (quantstudy/summary/summary.py)")
    ap.add_argument("--perf", help="perf.csv, for the hardware each GPU type ran on (optional)")
    ap.add_argument(
        "--floor", type=float, required=True, help="recovery floor in %% (config guideline.recovery_floor_pct)"
    )
    ap.add_argument("--suites", default="[]", help="JSON list of suites the floor applies to ([] = all)")
    ap.add_argument(
        "--support",
        type=cli.json_arg,
        default={},
        help="JSON {model: {gpu: {scheme: support}}} from the support matrix: names what cannot be served, "
        "and what is emulated",
    )
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    add_schemes_arg(ap)
    args = ap.parse_args(argv)
    recovery = scheme_recovery(read_csv(args.summary), json.loads(args.suites) or None)
    rows = recommend(read_csv(args.cost), recovery, args.floor, args.schemes, args.support)
    hardware = {r["gpu"]: r["hardware"] for r in read_csv(args.perf)} if args.perf else None
    atomic.write_text(args.md, to_markdown(rows, args.floor, hardware, order=args.schemes))
    atomic.write_text(args.csv, to_csv(rows, FIELDS))
    for r in rows:
        log.info(
            "%s %s %s %s -> %s (runner-up %s, margin %s%%)",
            r["model"],
            r["gpu"],
            r["mode"],
            r["use_case"],
            r.get("recommended"),
            r.get("runner_up"),
            r.get("margin_pct"),
        )
    return 0


if __name__ == "__main__":
    cli.main(main)
