#!/usr/bin/env python
"""Write the report's tables as self-contained HTML pages (Snakemake shows HTML in its report).

    python -m quantstudy.report.report_tables --summary results/summary.csv --guideline results/guideline.md \\
        --recovery /tmp/recovery.html --similarity /tmp/similarity.html --guideline-html /tmp/guideline.html \\
        --schemes '["bf16", "fp8", "int8", "int4"]'

--schemes is the config's `schemes` list: the order of the tables' columns.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from quantstudy.core import atomic, cli
from quantstudy.core.schemeorder import add_schemes_arg
from quantstudy.report import reporthtml
from quantstudy.report.plots import read_csv

log = logging.getLogger("report_tables")


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--summary", required=True, help="results/summary.csv")
    ap.add_argument("--guideline", nargs="?", help="results/guideline.md (the deployment guideline)")
    ap.add_argument("--recovery", required=True, help="output: scores and recovery per model, task and suite")
    ap.add_argument("--similarity", required=True, help="output: drift from bf16 (similarity, KL, flips)")
    ap.add_argument("--guideline-html", help="output: the guideline as HTML")
    add_schemes_arg(ap)
    args = ap.parse_args(argv)

    summary = read_csv(args.summary)
    atomic.write_text(args.recovery, reporthtml.recovery_page(summary, args.schemes))
    atomic.write_text(args.similarity, reporthtml.similarity_page(summary, args.schemes))
    if args.guideline_html:
        if args.guideline and os.path.exists(args.guideline):
            md = Path(args.guideline).read_text()
        else:
            md = "# Deployment guideline\n\nNo guideline: the performance stage did not run.\n"
        atomic.write_text(args.guideline_html, reporthtml.markdown_page("Deployment guideline", md))
    log.info("%d summary rows -> %s, %s", len(summary), args.recovery, args.similarity)
    return 0


if __name__ == "__main__":
    cli.main(main)
