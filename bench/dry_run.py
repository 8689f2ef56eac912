#!/usr/bin/env python
"""How long planning the paper's full grid takes, and how many jobs it plans.

A researcher's first step on a cluster is a dry run; it must be fast and plan every job.
Runs `snakemake -n --profile slurm --configfile config/paper.yaml` (no SLURM needed for a
dry run) a few times and prints the job counts per rule and the wall time of each run:

    .venv/workflow/bin/python -m bench.dry_run [--repeats 3] [--configfile config/paper.yaml]

It also prints what the evaluations cost in model loads: engine starts and the GPU-hours
they take, for the planned shape (one evaluate job per (model, scheme), one engine per
distinct engine setting among its tasks, read from each job's --plan) against the shape
before it (one job and one engine per (model, scheme, task)). An engine start's time is
an assumption per model size (ENGINE_START_S, below), not a measurement.
"""

from __future__ import annotations

import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from quantstudy.core import cli

ROOT = Path(__file__).resolve().parents[1]

# Assumed seconds from job start to a ready vLLM engine on an H100/H200 node, by model size
# (billions of parameters, upper bound): reading the bf16/quantized weights from shared
# storage at ~2 GB/s per GPU, plus CUDA-graph capture and warm-up (~1 min). Measured here on
# CPU only (the fixture: ~25-35 s a start with enforce_eager, mostly imports).
ENGINE_START_S = [(10, 120), (100, 420), (float("inf"), 1200)]


def start_s(params_b: float) -> int:
    return next(s for limit, s in ENGINE_START_S if params_b <= limit)


def evaluate_jobs(out: str) -> list[dict]:
    """(model, gpus, tasks, engine groups) of every planned evaluate job, from its command."""
    jobs = []
    for line in out.splitlines():
        if "quantstudy.evaluate.evaluate" not in line or "--plan" not in line:
            continue
        argv = shlex.split(line.split(":", 1)[1] if line.startswith("Shell command:") else line)
        plan = json.loads(argv[argv.index("--plan") + 1])
        model = argv[argv.index("--model") + 1]
        engines = {json.dumps(i["evaluation"]["engine"], sort_keys=True) for i in plan}
        tp = max(int(i["evaluation"]["engine"].get("tensor_parallel_size") or 1) for i in plan)
        jobs.append({"model": model, "gpus": tp, "tasks": len(plan), "engines": len(engines)})
    return jobs


def engine_cost(jobs: list[dict], params_b: dict) -> str:
    rows = [
        "| model | GPUs | evaluate jobs before / after | engine starts before / after | "
        "GPU-hours in engine starts before / after |",
        "|---|---|---|---|---|",
    ]
    total = [0, 0, 0, 0, 0.0, 0.0]
    for model in sorted({j["model"] for j in jobs}):
        js = [j for j in jobs if j["model"] == model]
        gpus, secs = js[0]["gpus"], start_s(params_b.get(model, 0))
        before = sum(j["tasks"] for j in js)  # one job, one engine per task
        after = sum(j["engines"] for j in js)
        gh = [n * gpus * secs / 3600 for n in (before, after)]
        rows.append(f"| {model} | {gpus} | {before} / {len(js)} | {before} / {after} | {gh[0]:.1f} / {gh[1]:.1f} |")
        for k, v in enumerate((before, len(js), before, after, *gh)):
            total[k] += v
    rows.append(f"| all | | {total[0]} / {total[1]} | {total[2]} / {total[3]} | {total[4]:.1f} / {total[5]:.1f} |")
    return "\n".join(rows)


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
    jobs = evaluate_jobs(out)
    if jobs:
        import yaml

        cfg = yaml.safe_load((ROOT / args.configfile).read_text())
        params_b = {m: float(v.get("params_b") or 0) for m, v in cfg.get("models", {}).items()}
        print(
            "\nEvaluation model loads (engine start assumed: "
            + ", ".join(f"<= {lim:g}B {s} s" for lim, s in ENGINE_START_S)
            + "):\n"
        )
        print(engine_cost(jobs, params_b))
    print(
        f"\nwall per dry run: median {statistics.median(walls):.2f} s "
        f"(min {min(walls):.2f}, max {max(walls):.2f}, {len(walls)} runs)"
    )
    return 0


if __name__ == "__main__":
    cli.main(main)
