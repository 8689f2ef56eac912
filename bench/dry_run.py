#!/usr/bin/env python
"""How long planning the paper's full grid takes, and how many jobs it plans.

A researcher's first step on a cluster is a dry run; it must be fast and plan every job.
Runs `snakemake -n --profile slurm --configfile config/paper.yaml` (no SLURM needed for a
dry run) a few times and prints the job counts per rule and the wall time of each run:

    .venv/workflow/bin/python -m bench.dry_run [--repeats 3] [--configfile config/paper.yaml]

It also prints what the evaluations cost in model loads: engine starts and the GPU-hours
they take, for three shapes: one job and one engine per (model, scheme, task); one job per
(model, scheme) with one engine per distinct task engine setting (the paper's per-task
max_model_len gave five); and the planned one, one job per (model, scheme) with the model
loads quantstudy.evaluate.evaluate.model_loads makes of each job's --plan (tasks that differ
only in max_model_len share an engine). An engine start's time is an assumption per model
size (ENGINE_START_S, below), not a measurement. `--configfile` takes several files, as
Snakemake does (config/paper.yaml config/paper-2026.yaml: today's formats too).
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
from quantstudy.evaluate.evaluate import lm_settings, model_loads

ROOT = Path(__file__).resolve().parents[1]

# Assumed seconds from job start to a ready vLLM engine on an H100/H200 node, by model size
# (billions of parameters, upper bound): reading the bf16/quantized weights from shared
# storage at ~2 GB/s per GPU, plus CUDA-graph capture and warm-up (~1 min). Measured here on
# CPU only (the fixture: ~25-35 s a start with enforce_eager, mostly imports).
ENGINE_START_S = [(10, 120), (100, 420), (float("inf"), 1200)]


def start_s(params_b: float) -> int:
    return next(s for limit, s in ENGINE_START_S if params_b <= limit)


def evaluate_jobs(out: str) -> list[dict]:
    """(model, gpus, tasks, engine settings, model loads) of every planned evaluate job, from
    its command."""
    jobs = []
    for line in out.splitlines():
        if "quantstudy.evaluate.evaluate" not in line or "--plan" not in line:
            continue
        argv = shlex.split(line.split(":", 1)[1] if line.startswith("Shell command:") else line)
        arg = dict(zip(argv, argv[1:], strict=False))  # each option's value
        plan, backend = json.loads(arg["--plan"]), arg["--backend"]
        # The hf model's device is where the job lands, unknown here (and no torch): it is
        # the same for every task of a job, so it groups nothing.
        tasks = [{**i, "settings": lm_settings(i["task_spec"], i["evaluation"], backend, device="cuda")} for i in plan]
        engines = {json.dumps(i["evaluation"]["engine"], sort_keys=True) for i in plan}
        tp = max(int(i["evaluation"]["engine"].get("tensor_parallel_size") or 1) for i in plan)
        jobs.append(
            {
                "model": arg["--model"],
                "gpus": tp,
                "tasks": len(plan),
                "engines": len(engines),
                "loads": len(model_loads(tasks, backend, arg["--model-dir"])),
            }
        )
    return jobs


SHAPES = ("one per task", "one per task engine setting", "planned")


def engine_cost(jobs: list[dict], params_b: dict) -> str:
    """Evaluate jobs, engine starts and GPU-hours in engine starts per model, each as
    one per task / one per task engine setting / planned."""
    rows = [
        f"| model | GPUs | evaluate jobs | engine starts ({' / '.join(SHAPES)}) | GPU-hours in engine starts |",
        "|---|---|---|---|---|",
    ]
    total = {"jobs": [0, 0, 0], "starts": [0, 0, 0], "hours": [0.0, 0.0, 0.0]}
    for model in sorted({j["model"] for j in jobs}):
        js = [j for j in jobs if j["model"] == model]
        gpus, secs = js[0]["gpus"], start_s(params_b.get(model, 0))
        starts = [sum(j[k] for j in js) for k in ("tasks", "engines", "loads")]
        per = {
            "jobs": [starts[0], len(js), len(js)],
            "starts": starts,
            "hours": [n * gpus * secs / 3600 for n in starts],
        }
        rows.append(f"| {model} | {gpus} | {_row(per['jobs'])} | {_row(per['starts'])} | {_row(per['hours'])} |")
        for k, v in per.items():
            total[k] = [a + b for a, b in zip(total[k], v, strict=True)]
    rows.append(f"| all | | {_row(total['jobs'])} | {_row(total['starts'])} | {_row(total['hours'])} |")
    return "\n".join(rows)


def _row(values) -> str:
    return " / ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in values)


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configfile", nargs="+", default=["config/paper.yaml"])
    args = ap.parse_args(argv)
    cmd = [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--configfile", *args.configfile]
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

        models = {}  # later files override earlier ones, as in Snakemake
        for f in args.configfile:
            models.update(yaml.safe_load((ROOT / f).read_text()).get("models") or {})
        params_b = {m: float(v.get("params_b") or 0) for m, v in models.items()}
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
