#!/usr/bin/env python
"""Write the report's tables as self-contained HTML pages (Snakemake shows HTML in its report).

    python scripts/report_tables.py --summary results/summary.csv --guideline results/guideline.md \\
        --recovery /tmp/recovery.html --similarity /tmp/similarity.html --guideline-html /tmp/guideline.html
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic, reporthtml  # noqa: E402
from quantstudy.plots import read_csv  # noqa: E402

log = logging.getLogger("report_tables")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--summary", required=True, help="results/summary.csv")
    ap.add_argument("--guideline", help="results/guideline.md (the deployment guideline)")
    ap.add_argument("--recovery", required=True, help="output: scores and recovery per model, task and suite")
    ap.add_argument("--similarity", required=True, help="output: drift from bf16 (similarity, KL, flips)")
    ap.add_argument("--guideline-html", help="output: the guideline as HTML")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    summary = read_csv(args.summary)
    atomic.write_text(args.recovery, reporthtml.recovery_page(summary))
    atomic.write_text(args.similarity, reporthtml.similarity_page(summary))
    if args.guideline_html:
        if args.guideline and os.path.exists(args.guideline):
            md = Path(args.guideline).read_text()
        else:
            md = "# Deployment guideline\n\nNo guideline: the performance stage did not run.\n"
        atomic.write_text(args.guideline_html, reporthtml.markdown_page("Deployment guideline", md))
    log.info("%d summary rows -> %s, %s", len(summary), args.recovery, args.similarity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
