#!/usr/bin/env python
"""results/cost.csv + results/summary.csv -> results/guideline.csv and results/guideline.md.

    python scripts/guideline.py --cost results/cost.csv --summary results/summary.csv \\
        --floor 99 --csv /tmp/guideline.csv --md /tmp/guideline.md

The rule is stated in quantstudy/guideline.py and in the markdown it writes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic  # noqa: E402
from quantstudy.guideline import DEFAULT_FLOOR_PCT, FIELDS, recommend, scheme_recovery, to_markdown  # noqa: E402
from quantstudy.tables import read_csv, to_csv  # noqa: E402

log = logging.getLogger("guideline")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cost", required=True, help="cost.csv (scripts/cost.py)")
    ap.add_argument("--summary", required=True, help="summary.csv (scripts/summarize.py)")
    ap.add_argument("--perf", help="perf.csv, for the hardware each GPU type ran on (optional)")
    ap.add_argument("--floor", type=float, default=DEFAULT_FLOOR_PCT, help="recovery floor in %%")
    ap.add_argument("--suites", default="[]", help="JSON list of suites the floor applies to ([] = all)")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    recovery = scheme_recovery(read_csv(args.summary), json.loads(args.suites) or None)
    rows = recommend(read_csv(args.cost), recovery, args.floor)
    hardware = {r["gpu"]: r["hardware"] for r in read_csv(args.perf)} if args.perf else None
    atomic.write_text(args.md, to_markdown(rows, args.floor, hardware))
    atomic.write_text(args.csv, to_csv(rows, FIELDS))
    for r in rows:
        log.info("%s %s %s %s -> %s (runner-up %s, margin %s%%)", r["model"], r["gpu"], r["mode"], r["use_case"],
                 r.get("recommended"), r.get("runner_up"), r.get("margin_pct"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
