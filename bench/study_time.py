#!/usr/bin/env python
"""Wall time of the default study, and per-rule wall time and peak resident memory.

Runs the study from scratch in a throwaway copy of the workflow (the repository's
results/ are left alone) and reads Snakemake's `benchmark:` TSVs:

    .venv/workflow/bin/python -m bench.study_time            # fresh run, then report
    .venv/workflow/bin/python -m bench.study_time --results results   # report an existing run
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from quantstudy.core import cli
from tests.workspace import copy_workflow

ROOT = Path(__file__).resolve().parents[1]


def read_benchmarks(results: Path) -> list[dict]:
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks")
        with open(tsv) as f:
            for rec in csv.DictReader(f, delimiter="\t"):
                rows.append(
                    {
                        "rule": rel.parts[0] if len(rel.parts) > 1 else rel.stem,
                        "job": str(rel.with_suffix("")),
                        "s": float(rec["s"]),
                        "max_rss_mb": float(rec["max_rss"]) if rec["max_rss"] not in ("", "NA", "-") else None,
                    }
                )
    return rows


# Each model load a job records: vLLM's engine config line, lm-eval's hf model line, generate's.
ENGINE_START = re.compile(
    r"engine \(v[^)]*\) with config: model=|Initializing hf model, with arguments|hf backend loaded '"
)


def engine_starts(results: Path) -> dict[str, int]:
    """Model loads per rule, counted in the job logs (results/logs/<rule>/...)."""
    counts: dict[str, int] = defaultdict(int)
    for log in sorted((results / "logs").rglob("*.log")):
        rule = log.relative_to(results / "logs").parts[0]
        counts[rule] += len(ENGINE_START.findall(log.read_text(errors="replace")))
    return {r: n for r, n in counts.items() if n}


def report(rows: list[dict], wall: float | None, starts: dict[str, int] | None = None) -> str:
    out = []
    if wall is not None:
        out.append(f"study wall time: {wall:.1f} s ({len(rows)} benchmarked jobs)")
    if starts:
        out.append("model loads: " + ", ".join(f"{r} {n}" for r, n in sorted(starts.items())))
    out.append(f"{'job':55s} {'wall s':>8s} {'peak RSS MB':>12s}")
    for r in rows:
        rss = f"{r['max_rss_mb']:.0f}" if r["max_rss_mb"] is not None else "-"
        out.append(f"{r['job']:55s} {r['s']:8.1f} {rss:>12s}")
    by_rule = defaultdict(list)
    for r in rows:
        by_rule[r["rule"]].append(r)
    out.append("")
    out.append(f"{'rule':12s} {'jobs':>5s} {'total s':>9s} {'mean s':>8s} {'max peak RSS MB':>16s}")
    for rule, rs in by_rule.items():
        tot = sum(r["s"] for r in rs)
        peak = max((r["max_rss_mb"] or 0) for r in rs)
        out.append(f"{rule:12s} {len(rs):5d} {tot:9.1f} {tot / len(rs):8.1f} {peak:16.0f}")
    total = sum(r["s"] for r in rows)
    if total:
        ev = sum(r["s"] for r in rows if r["rule"] == "evaluate")
        out.append(f"\nevaluate: {ev:.1f} s of {total:.1f} job-seconds ({100 * ev / total:.0f}%)")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--results", type=Path, help="report an existing results/ folder instead of running")
    ap.add_argument("--cores", default="2")
    ap.add_argument("--keep", action="store_true", help="keep the throwaway copy")
    args = ap.parse_args(argv)
    if args.results:
        print(report(read_benchmarks(args.results), None, engine_starts(args.results)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="quantstudy-bench-"))
    copy_workflow(work)
    env = {**os.environ, "QUANTSTUDY_VENVS": os.environ.get("QUANTSTUDY_VENVS", str(ROOT / ".venv"))}
    started = time.time()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", args.cores, "--quiet", "all"], cwd=work, env=env, check=True
    )
    wall = time.time() - started
    print(report(read_benchmarks(work / "results"), wall, engine_starts(work / "results")))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept: {work}")
    return 0


if __name__ == "__main__":
    cli.main(main)
