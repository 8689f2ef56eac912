#!/usr/bin/env python
"""Collect perf directories (quantstudy/perf/perf.py) into results/perf.csv and results/perf_sweep.csv.

    python -m quantstudy.perf.perf_table results/perf/*/*/* --csv /tmp/perf.csv --sweep-csv /tmp/sweep.csv \\
        --schemes '["bf16", "fp8", "int8", "int4"]'

perf.csv: one row per (model, scheme, gpu, use_case, mode); sync = max concurrency 1, async =
the saturated point (request rate inf). perf_sweep.csv: every async point of the sweep.
Measures are means over repeats; *_std and *_cv give their run-to-run spread. Within a
(model, gpu, use case, mode) the rows follow --schemes, the config's `schemes` list.
"""

from __future__ import annotations

import logging

from quantstudy.core import atomic, cli
from quantstudy.core.schemeorder import add_schemes_arg
from quantstudy.core.tables import to_csv
from quantstudy.perf.perf import FIELDS, point_rows, split_rows

log = logging.getLogger("perf_table")


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("perf_dirs", nargs="+", help="directories written by quantstudy/perf/perf.py")
    ap.add_argument("--csv", required=True)
    add_schemes_arg(ap)  # the order of the schemes within each group of rows
    ap.add_argument("--sweep-csv", required=True)
    ap.add_argument(
        "--support",
        type=cli.json_arg,
        default={},
        help="JSON {model: {gpu: {scheme: support}}} from the support matrix (labels served_as)",
    )
    args = ap.parse_args(argv)
    try:
        rows = [r for d in args.perf_dirs for r in point_rows(d, args.support)]
    except ValueError as e:  # a damaged result is named, never tabulated
        raise cli.StepError(e) from e
    main_rows, sweep = split_rows(rows, args.schemes)
    atomic.write_text(args.sweep_csv, to_csv(sweep, FIELDS))
    atomic.write_text(args.csv, to_csv(main_rows, FIELDS))
    worst = max((r["request_throughput_cv"] or 0 for r in main_rows), default=0)
    log.info(
        "%d perf rows, %d sweep rows from %d dirs; largest request-throughput CV %.1f%%",
        len(main_rows),
        len(sweep),
        len(args.perf_dirs),
        worst * 100,
    )
    return 0


if __name__ == "__main__":
    cli.main(main)
