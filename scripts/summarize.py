#!/usr/bin/env python
"""Collect per-task eval JSONs into results/summary.csv and results/summary.md.

    python scripts/summarize.py results/eval/*/*/*.json --csv /tmp/s.csv --md /tmp/s.md
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic  # noqa: E402
from quantstudy.lmeval import EvalFileError, read_eval_json  # noqa: E402
from quantstudy.summary import build_rows, read_similarity_json, similarity_rows, to_csv, to_markdown  # noqa: E402

log = logging.getLogger("summarize")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evals", nargs="+", help="eval JSON files written by scripts/evaluate.py")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--skipped", default="{}", help="JSON {task: reason} of tasks declared but not run")
    ap.add_argument("--similarity", nargs="*", default=[],
                    help="similarity JSON files written by scripts/similarity.py (optional)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        evals = [read_eval_json(p) for p in args.evals]
    except EvalFileError as e:  # a corrupt or truncated file is never summarized as a score
        log.error("%s", e)
        return 1
    try:
        sims = [read_similarity_json(p) for p in args.similarity]
    except ValueError as e:
        log.error("%s", e)
        return 1
    rows = build_rows(evals) + similarity_rows(sims, evals)
    md = to_markdown(rows)
    skipped = json.loads(args.skipped)
    if skipped:  # declared, not silently dropped
        md += "\n## Tasks not run\n\n| task | reason |\n|---|---|\n"
        md += "".join(f"| {t} | {why} |\n" for t, why in sorted(skipped.items()))
    atomic.write_text(args.md, md)
    atomic.write_text(args.csv, to_csv(rows))
    log.info("%d rows from %d eval files and %d similarity files", len(rows), len(evals), len(sims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
