#!/usr/bin/env python
"""Soak the engine steps: run them over and over, and whole studies on fresh clones, and
count what failed and why. A workflow whose first command fails one time in two fails its
users; this is how that is measured (issue: "fresh machine, every time").

    # engine steps N times in a row, through Snakemake, in a throwaway copy of the workflow
    .venv/workflow/bin/python -m bench.soak steps --n 10
    # K full default studies, each on a fresh `git clone` of this repository (HEAD), with
    # `make study`; --venvs DIR shares one env build between them (else each builds its own)
    .venv/workflow/bin/python -m bench.soak studies --k 3 --venvs /tmp/qs-venvs
    # what a finished study did: jobs, failures and why, absorbed teardown aborts, times
    .venv/workflow/bin/python -m bench.soak report path/to/workflow-dir

Every engine job's log is read for the failure signatures seen on this machine kind
(SIGABRT in teardown, "terminate called without an active exception") and for the step
supervisor's own lines (quantstudy/core/step.py): an abnormal worker exit absorbed after a
complete commit, and processes it had to stop.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantstudy.core import cli
from tests.workspace import copy_workflow

ROOT = Path(__file__).resolve().parents[1]

ENGINE_RULES = ("quantize", "evaluate", "generate", "perf")
SIGNATURES = {
    "teardown-abort": re.compile(r"terminate called without an active exception"),
    "sigabrt": re.compile(r"SIGABRT|exit code 134|Aborted"),
    "absorbed": re.compile(r"exited abnormally .* after committing every output"),
    "leftover-processes": re.compile(r"stopped \d+ process\(es\) the worker left behind"),
    "traceback": re.compile(r"^Traceback", re.M),
}
# The soak's engine steps: (rule, target). Perf runs CI-sized (see --perf-*).
STEP_TARGETS = [
    ("evaluate", "results/eval/tiny-llama/w8a8-int/count_letter.json"),
    ("evaluate", "results/eval/tiny-llama/bf16/reverse.json"),
    ("generate", "results/generations/tiny-llama/w4a16-int.jsonl"),
    ("perf", "results/perf/tiny-llama/w8a8-int/cpu"),
]


def log_findings(text: str) -> list[str]:
    return [name for name, rx in SIGNATURES.items() if rx.search(text)]


def snakemake(workdir: Path, *args: str, timeout: float = 3600) -> tuple[int, float, str]:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    t = time.time()
    env = {**os.environ, "QUANTSTUDY_VENVS": os.environ.get("QUANTSTUDY_VENVS", str(ROOT / ".venv"))}
    p = subprocess.run(
        cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )
    return p.returncode, time.time() - t, p.stdout + p.stderr


def ci_sized_perf(workdir: Path, use_cases: int, requests: int, sync_requests: int, repeats: int) -> None:
    import yaml

    path = workdir / "config/config.yaml"
    cfg = yaml.safe_load(path.read_text())
    perf = cfg["performance"]
    perf["use_cases"] = {
        k: {**v, "requests": requests, "sync_requests": sync_requests}
        for k, v in list(perf["use_cases"].items())[:use_cases]
    }
    perf["repeats"] = repeats
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def soak_steps(n: int, workdir: Path | None, args) -> int:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="qs-soak-")) / "wf"
    if not (workdir / "Snakefile").exists():
        copy_workflow(workdir)
        ci_sized_perf(workdir, args.perf_use_cases, args.perf_requests, args.perf_sync_requests, args.perf_repeats)
    print(f"workflow copy: {workdir}", flush=True)
    rc, secs, out = snakemake(workdir, *{t for _, t in STEP_TARGETS})  # prerequisites + a first pass
    print(f"prerequisites: exit {rc} in {secs:.0f} s", flush=True)
    if rc != 0:
        print(out[-4000:])
        return 1
    rows = []
    for i in range(n):
        rule, target = STEP_TARGETS[i % len(STEP_TARGETS)]
        rc, secs, out = snakemake(workdir, "--force", target)  # reruns this one job only
        logs = "".join(
            p.read_text(errors="replace")
            for p in (workdir / "results/logs" / rule).rglob("*.log")
            if p.stat().st_mtime >= time.time() - secs - 1
        )
        findings = log_findings(logs + out)
        rows.append(
            {
                "run": i + 1,
                "rule": rule,
                "target": target,
                "exit": rc,
                "seconds": round(secs, 1),
                "findings": ",".join(findings),
            }
        )
        print(f"{i + 1:3d} {rule:9s} {target:55s} exit {rc} {secs:6.1f} s {' '.join(findings)}", flush=True)
        if rc != 0:
            print("    " + out[-2000:].replace("\n", "\n    "), flush=True)
    failed = [r for r in rows if r["exit"] != 0]
    print(
        f"\n{len(rows)} engine-step runs, {len(failed)} failed; "
        f"absorbed teardown aborts: {sum('absorbed' in r['findings'] for r in rows)}; "
        f"runs that left processes: {sum('leftover-processes' in r['findings'] for r in rows)}"
    )
    for rule in ENGINE_RULES:
        rs = [r["seconds"] for r in rows if r["rule"] == rule]
        if rs:
            print(f"  {rule:9s} {len(rs):3d} runs, mean {sum(rs) / len(rs):6.1f} s, max {max(rs):6.1f} s")
    for r in failed:
        print(f"  FAILED run {r['run']}: {r['rule']} {r['target']} ({r['findings'] or 'no known signature'})")
    return 1 if failed else 0


def report(workdir: Path) -> dict:
    """Jobs of a finished (or failed) study, from its logs and benchmark TSVs."""
    jobs = []
    for tsv in sorted((workdir / "results/benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(workdir / "results/benchmarks").with_suffix("")
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        with open(tsv) as f:
            rec = next(csv.DictReader(f, delimiter="\t"), {})
        log = workdir / "results/logs" / rel.with_suffix(".log")
        text = log.read_text(errors="replace") if log.exists() else ""
        jobs.append(
            {"rule": rule, "job": str(rel), "seconds": float(rec.get("s") or "nan"), "findings": log_findings(text)}
        )
    runs = sorted((workdir / ".snakemake/log").glob("*.snakemake.log"))
    errors = []
    for r in runs:
        errors += re.findall(r"Error in rule (\w+):", r.read_text(errors="replace"))
    return {"jobs": jobs, "errors": errors}


def print_report(workdir: Path, wall: float | None = None, rc: int | None = None) -> dict:
    rep = report(workdir)
    engine = [j for j in rep["jobs"] if j["rule"] in ENGINE_RULES]
    head = f"{workdir}: {len(rep['jobs'])} jobs ({len(engine)} engine steps)"
    if wall is not None:
        head += f", exit {rc}, wall {wall / 60:.1f} min"
    print(head)
    print(f"  failed jobs: {len(rep['errors'])} {rep['errors'] or ''}")
    print(
        f"  absorbed teardown aborts: {sum('absorbed' in j['findings'] for j in engine)}; "
        f"jobs that left processes: {sum('leftover-processes' in j['findings'] for j in engine)}"
    )
    for rule in dict.fromkeys(j["rule"] for j in rep["jobs"]):
        s = [j["seconds"] for j in rep["jobs"] if j["rule"] == rule]
        print(f"  {rule:14s} {len(s):3d} jobs, total {sum(s):7.1f} s, max {max(s):6.1f} s")
    return rep


def soak_studies(k: int, venvs: Path | None, keep: bool) -> int:
    base = Path(tempfile.mkdtemp(prefix="qs-studies-"))
    env = {**os.environ}
    env.pop("QUANTSTUDY_VENVS", None)
    if venvs:
        env["QUANTSTUDY_VENVS"] = str(venvs)
    bad = 0
    for i in range(k):
        clone = base / f"clone{i + 1}"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        make = ["make", "study"] + ([f"VENVS={venvs}"] if venvs else [])
        t = time.time()
        with open(base / f"clone{i + 1}.log", "w") as logf:
            rc = subprocess.run(make, cwd=clone, env=env, stdout=logf, stderr=subprocess.STDOUT).returncode
        wall = time.time() - t
        rep = print_report(clone, wall, rc)
        bad += rc != 0 or bool(rep["errors"])
        if not keep and rc == 0:
            shutil.rmtree(clone)
    print(f"\n{k} studies on fresh clones, {bad} failed (logs: {base})")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("steps", help="engine steps N times in a row")
    s.add_argument("--n", type=int, default=30)
    s.add_argument("--workdir", type=Path, help="reuse this workflow copy (made if missing)")
    s.add_argument("--perf-use-cases", type=int, default=2)
    s.add_argument("--perf-requests", type=int, default=24)
    s.add_argument("--perf-sync-requests", type=int, default=3)
    s.add_argument("--perf-repeats", type=int, default=1)
    st = sub.add_parser("studies", help="K full default studies on fresh clones (make study)")
    st.add_argument("--k", type=int, default=3)
    st.add_argument("--venvs", type=Path, help="one env dir shared by the clones (default: each builds its own)")
    st.add_argument("--keep", action="store_true", help="keep the clones of passing studies")
    r = sub.add_parser("report", help="jobs, failures and times of a finished study")
    r.add_argument("workdir", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "steps":
        return soak_steps(args.n, args.workdir, args)
    if args.cmd == "studies":
        return soak_studies(args.k, args.venvs, args.keep)
    rep = print_report(args.workdir)
    return 1 if rep["errors"] else 0


if __name__ == "__main__":
    cli.main(main)
