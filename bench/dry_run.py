#!/usr/bin/env python
"""How long planning the paper's full grid takes, and how many jobs it plans.

A researcher's first step on a cluster is a dry run; it must be fast and plan every job.
Runs `snakemake -n --profile slurm --configfile config/paper.yaml` (no SLURM needed for a
dry run) a few times and prints the job counts per rule and the wall time of each run:

    .venv/workflow/bin/python -m bench.dry_run [--repeats 3] [--configfile config/paper.yaml]
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from quantstudy.core import cli

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configfile", default="config/paper.yaml")
    args = ap.parse_args(argv)
    cmd = [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--configfile", args.configfile]
    walls, out = [], ""
    for _ in range(args.repeats):
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if p.returncode != 0:
            print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
            return p.returncode
        out = p.stdout + p.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:", 1)[1], re.M))
    print(f"{' '.join(cmd[1:])}\n")
    print("| rule | jobs |\n|---|---|")
    for rule, n in stats.items():
        print(f"| {rule} | {n} |")
    print(
        f"\nwall per dry run: median {statistics.median(walls):.2f} s "
        f"(min {min(walls):.2f}, max {max(walls):.2f}, {len(walls)} runs)"
    )
    return 0


if __name__ == "__main__":
    cli.main(main)
