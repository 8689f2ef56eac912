#!/usr/bin/env python
"""Draw the report's figures from summary.csv, perf.csv and cost.csv (SVG or PNG by suffix).

    python -m quantstudy.report.figures --summary results/summary.csv --perf results/perf.csv \\
        --cost results/cost.csv --recovery /tmp/recovery.svg \\
        --throughput /tmp/accuracy_vs_throughput.svg --cost-figure /tmp/accuracy_vs_cost.svg \\
        --sweep results/perf_sweep.csv --slo-figure /tmp/slo.svg \\
        --schemes '["bf16", "fp8", "int8", "int4"]'

--schemes is the config's `schemes` list: the order of the schemes in every figure and their
colours (bf16 grey, the others a palette colour each by position), shared by all the figures;
a scheme found in the CSVs but not listed comes after the listed ones, by name.

--perf/--cost may be left out or name a missing file: those figures then say that
nothing was measured. Recovery intervals are drawn when summary.csv has the
recovery_ci_low/recovery_ci_high columns, and the figure says when it has none.
"""

from __future__ import annotations

import logging
import os

from quantstudy.core import cli
from quantstudy.core.schemeorder import add_schemes_arg, ordered
from quantstudy.report import plots

log = logging.getLogger("plot")


def _rows(path):
    if not path:
        return []
    if not os.path.exists(path):
        log.warning("%s does not exist: drawn as 'no measurements'", path)
        return []
    return plots.read_csv(path)


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--summary", required=True, help="results/summary.csv")
    ap.add_argument("--perf", nargs="?", help="results/perf.csv (one row per model, scheme, gpu, use case, mode)")
    ap.add_argument("--cost", nargs="?", help="results/cost.csv (queries per dollar per perf row)")
    ap.add_argument("--recovery", required=True, help="output: recovery bars per task/suite and scheme")
    ap.add_argument("--similarity", help="output: similarity of each scheme's answers to bf16's")
    ap.add_argument("--throughput", help="output: accuracy vs request throughput")
    ap.add_argument("--cost-figure", help="output: accuracy vs queries per dollar")
    ap.add_argument("--sweep", nargs="?", help="results/perf_sweep.csv (every async point, the SLO probes among them)")
    ap.add_argument("--slo-figure", help="output: latency percentile vs request rate, SLO and sustained rate")
    add_schemes_arg(ap)
    args = ap.parse_args(argv)

    summary = plots.read_csv(args.summary)
    perf, cost, sweep = _rows(args.perf), _rows(args.cost), _rows(args.sweep)
    # Every scheme of every input in one order, so each keeps one colour across the figures.
    order = ordered([*args.schemes, *(r["scheme"] for r in summary + perf + cost)], args.schemes)
    info = plots.plot_recovery(summary, args.recovery, order)
    log.info("recovery: %s -> %s", info, args.recovery)
    if args.similarity:
        info = plots.plot_similarity(summary, args.similarity, order)
        log.info("similarity: %s -> %s", info, args.similarity)
    hardware = plots.hardware_by_gpu(perf)
    if args.throughput:
        info = plots.plot_tradeoff(
            plots.tradeoff_panels(summary, perf, "request_throughput", order),
            args.throughput,
            "request throughput (requests/s)",
            hardware,
            order=order,
            what="throughput",
        )
        log.info("throughput: %s -> %s", info, args.throughput)
    if args.cost_figure:
        info = plots.plot_tradeoff(
            plots.tradeoff_panels(summary, cost, "queries_per_dollar", order),
            args.cost_figure,
            "queries per dollar",
            hardware,
            order=order,
            what="cost",
        )
        log.info("cost: %s -> %s", info, args.cost_figure)
    if args.slo_figure:
        info = plots.plot_slo(plots.slo_panels(perf, sweep, order), args.slo_figure, hardware, order=order)
        log.info("slo: %s -> %s", info, args.slo_figure)
    return 0


if __name__ == "__main__":
    cli.main(main)
