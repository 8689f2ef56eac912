#!/usr/bin/env python
"""Draw the report's figures from summary.csv, perf.csv and cost.csv (SVG or PNG by suffix).

    python -m quantstudy.report.figures --summary results/summary.csv --perf results/perf.csv \\
        --cost results/cost.csv --recovery /tmp/recovery.svg \\
        --throughput /tmp/accuracy_vs_throughput.svg --cost-figure /tmp/accuracy_vs_cost.svg

--perf/--cost may be left out or name a missing file: those figures then say that
nothing was measured. Recovery intervals are drawn when summary.csv has the
recovery_ci_low/recovery_ci_high columns, and the figure says when it has none.
"""

from __future__ import annotations

import logging
import os

from quantstudy.core import cli
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
    args = ap.parse_args(argv)

    summary = plots.read_csv(args.summary)
    info = plots.plot_recovery(summary, args.recovery)
    log.info("recovery: %s -> %s", info, args.recovery)
    if args.similarity:
        info = plots.plot_similarity(summary, args.similarity)
        log.info("similarity: %s -> %s", info, args.similarity)
    perf = _rows(args.perf)
    hardware = plots.hardware_by_gpu(perf)
    if args.throughput:
        info = plots.plot_tradeoff(
            plots.tradeoff_panels(summary, perf, "request_throughput"),
            args.throughput,
            "request throughput (requests/s)",
            hardware,
            what="throughput",
        )
        log.info("throughput: %s -> %s", info, args.throughput)
    if args.cost_figure:
        info = plots.plot_tradeoff(
            plots.tradeoff_panels(summary, _rows(args.cost), "queries_per_dollar"),
            args.cost_figure,
            "queries per dollar",
            hardware,
            what="cost",
        )
        log.info("cost: %s -> %s", info, args.cost_figure)
    return 0


if __name__ == "__main__":
    cli.main(main)
