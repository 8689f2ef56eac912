#!/usr/bin/env python
"""Collect per-task eval JSONs into results/summary.csv and results/summary.md.

    python scripts/summarize.py results/eval/*/*/*.json --csv /tmp/s.csv --md /tmp/s.md \
        --samples results/eval/*/*/*.samples.jsonl --bootstrap-seed 0 --bootstrap-resamples 1000

With --samples (each beside its eval JSON: X.samples.jsonl for X.json), every recovery of
a quantized scheme gets a paired-bootstrap confidence interval (quantstudy/bootstrap.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic, bootstrap  # noqa: E402
from quantstudy.lmeval import EvalFileError, read_eval_json  # noqa: E402
from quantstudy.summary import build_rows, read_similarity_json, similarity_rows, to_csv, to_markdown  # noqa: E402

log = logging.getLogger("summarize")


def read_samples_beside(eval_paths: list[str], evals: list[dict], samples_paths: list[str]) -> dict:
    """{(model, scheme, task): per-item rows}, each samples file matched to its eval JSON by
    name; a samples file with no eval JSON beside it is an error (naming it)."""
    by_path = {bootstrap.samples_path_for(p).resolve(): e for p, e in zip(eval_paths, evals)}
    out = {}
    for sp in samples_paths:
        e = by_path.get(Path(sp).resolve())
        if e is None:
            raise ValueError(f"{sp}: no eval JSON beside it among the inputs (expected {sp[:-len('.samples.jsonl')]}.json)")
        out[(e["model"], e["scheme"], e["task"])] = bootstrap.read_samples(sp)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evals", nargs="+", help="eval JSON files written by scripts/evaluate.py")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--skipped", default="{}", help="JSON {task: reason} of tasks declared but not run")
    ap.add_argument("--similarity", nargs="*", default=[],
                    help="similarity JSON files written by scripts/similarity.py (optional)")
    ap.add_argument("--samples", nargs="*", default=[],
                    help="per-item samples JSONL beside eval JSONs (X.samples.jsonl for X.json): recovery intervals")
    ap.add_argument("--bootstrap-seed", type=int, default=bootstrap.DEFAULTS["seed"])
    ap.add_argument("--bootstrap-resamples", type=int, default=bootstrap.DEFAULTS["n_resamples"])
    ap.add_argument("--confidence", type=float, default=bootstrap.DEFAULTS["confidence"])
    ap.add_argument("--normalize", default="{}",
                    help='JSON {task: "leaderboard-v2"} of tasks scored with the leaderboard normalization')
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.captureWarnings(True)  # a suite skipped for mixing metric directions is named in the log
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
    try:
        samples = read_samples_beside(args.evals, evals, args.samples)
    except ValueError as e:
        log.error("%s", e)
        return 1
    significance = ({"seed": args.bootstrap_seed, "n_resamples": args.bootstrap_resamples,
                     "confidence": args.confidence} if args.samples else None)
    normalize = json.loads(args.normalize)
    started = time.perf_counter()
    try:
        rows = build_rows(evals, normalize, samples, significance) + similarity_rows(sims, evals)
    except ValueError as e:  # e.g. a normalization the results cannot support
        log.error("%s", e)
        return 1
    log.info("rows and intervals in %.2f s", time.perf_counter() - started)
    for r in rows:  # why a quantized row has no interval, or what it left out
        if r.get("ci_note"):
            log.warning("%s/%s/%s %s: %s", r["model"], r["scheme"], r["task"], r["metric"], r["ci_note"])
    md = to_markdown(rows, significance, sorted(normalize))
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
