#!/usr/bin/env python
"""Collect perf directories (scripts/perf.py) into results/perf.csv and results/perf_sweep.csv.

    python scripts/perf_table.py results/perf/*/*/* --csv /tmp/perf.csv --sweep-csv /tmp/sweep.csv

perf.csv: one row per (model, scheme, gpu, use_case, mode); sync = max concurrency 1, async =
the saturated point (request rate inf). perf_sweep.csv: every async point of the sweep.
Measures are means over repeats; *_std and *_cv give their run-to-run spread.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic  # noqa: E402
from quantstudy.perf import FIELDS, point_rows, split_rows  # noqa: E402
from quantstudy.tables import to_csv  # noqa: E402

log = logging.getLogger("perf_table")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("perf_dirs", nargs="+", help="directories written by scripts/perf.py")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--sweep-csv", required=True)
    ap.add_argument("--gpu-types", default="{}", help="config's gpu_types as JSON (labels served_as)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        gpu_types = json.loads(args.gpu_types)
        rows = [r for d in args.perf_dirs for r in point_rows(d, gpu_types)]
    except ValueError as e:  # a damaged result is named, never tabulated
        log.error("%s", e)
        return 1
    main_rows, sweep = split_rows(rows)
    atomic.write_text(args.sweep_csv, to_csv(sweep, FIELDS))
    atomic.write_text(args.csv, to_csv(main_rows, FIELDS))
    worst = max((r["request_throughput_cv"] or 0 for r in main_rows), default=0)
    log.info("%d perf rows, %d sweep rows from %d dirs; largest request-throughput CV %.1f%%",
             len(main_rows), len(sweep), len(args.perf_dirs), worst * 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
