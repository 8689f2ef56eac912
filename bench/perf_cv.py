#!/usr/bin/env python
"""How far the guideline's performance figures can be trusted: the run-to-run spread of
every point it uses, and what a longer point buys.

    # every guideline point of a finished study: its CV (sync, async: across the repeats of
    # the point; slo: half the search's bracket, the stand-in perf.csv gives) and the
    # runner-up's, how many stay under 5%, and the perf stage's job time
    .venv/workflow/bin/python -m bench.perf_cv report --results results

    # measure: one server, one use case, the saturated point and a Poisson point at a
    # fraction of it, each repeated --repeats times at several request counts (longer
    # points), interleaved round-robin so drift hits every count alike; prints the CV of
    # request throughput and of p99 TTFT per (point, count). Run it on a quiet machine:
    .venv/serve/bin/python -m bench.perf_cv measure --model-dir results/models/tiny-llama/w4a16-int \\
        --prompt-tokens 64 --output-tokens 2 --counts 256,1024 --repeats 5

Timings on a loaded machine are contaminated by the load: say so with the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

TARGET_CV = 0.05


def _f(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def guideline_points(results: Path) -> list[dict]:
    """Every (model, gpu, mode, use case, scheme) the guideline compares (recommended and
    runner-up), with its CV from perf.csv."""
    perf = {(r["model"], r["gpu"], r["mode"], r["use_case"], r["scheme"]): r for r in read_csv(results / "perf.csv")}
    out = []
    for g in read_csv(results / "guideline.csv"):
        for role in ("recommended", "runner_up"):
            scheme = g.get(role)
            if not scheme:
                continue
            p = perf.get((g["model"], g["gpu"], g["mode"], g["use_case"], scheme), {})
            out.append(
                {
                    "model": g["model"],
                    "gpu": g["gpu"],
                    "mode": g["mode"],
                    "use_case": g["use_case"],
                    "role": role,
                    "scheme": scheme,
                    "rps": _f(p.get("request_throughput")),
                    "cv": _f(p.get("request_throughput_cv")),
                    "margin_pct": _f(g.get("margin_pct")) if role == "recommended" else None,
                    "within_noise": g.get("within_noise") if role == "recommended" else "",
                }
            )
    return out


def perf_job_seconds(results: Path) -> float:
    total = 0.0
    for tsv in (results / "benchmarks" / "perf").rglob("*.tsv"):
        rows = read_csv_tsv(tsv)
        total += sum(float(r["s"]) for r in rows)
    return total


def read_csv_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def report(results: Path) -> int:
    pts = guideline_points(results)
    print(f"{'mode':5} {'use case':22} {'role':11} {'scheme':14} {'req/s':>8} {'CV':>7}  margin")
    for p in pts:
        cv = "—" if p["cv"] is None else f"{p['cv'] * 100:6.1f}%"
        rps = "—" if p["rps"] is None else f"{p['rps']:8.2f}"
        margin = (
            ""
            if p["margin_pct"] is None
            else f"{p['margin_pct']:+.1f}%" + (" (within noise)" if str(p["within_noise"]).lower() == "true" else "")
        )
        print(f"{p['mode']:5} {p['use_case']:22} {p['role']:11} {p['scheme']:14} {rps:>8} {cv:>7}  {margin}")
    print()
    for mode in sorted({p["mode"] for p in pts}):
        cvs = [p["cv"] for p in pts if p["mode"] == mode and p["cv"] is not None]
        if cvs:
            under = sum(c < TARGET_CV for c in cvs)
            print(
                f"{mode}: {under}/{len(cvs)} points under {TARGET_CV:.0%} CV; median {statistics.median(cvs) * 100:.1f}%, "
                f"max {max(cvs) * 100:.1f}%"
            )
    print(f"perf stage: {perf_job_seconds(results):.0f} s of job time (results/benchmarks/perf)")
    return 0


def measure(args) -> int:
    """One server; each (point, request count) repeated, interleaved round-robin."""
    from quantstudy.core import server
    from quantstudy.core.runtime import engine_threads_env, offline_env
    from quantstudy.perf.perf import Bench, bench_args, spread

    offline_env({"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    engine_threads_env()
    uc = {"prompt_tokens": args.prompt_tokens, "output_tokens": args.output_tokens}
    port = server.free_port()
    vllm = shutil.which("vllm", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    engine = {"dtype": "bfloat16", "max_model_len": 1024, "enforce_eager": True, "seed": 0, **json.loads(args.engine)}
    cmd = server.serve_command(vllm or "vllm", args.model_dir, "m", port, engine)
    counts = [int(c) for c in args.counts.split(",")]
    results: dict[tuple, list[dict]] = {}
    bench = Bench()
    with server.running(cmd, args.server_log, env=dict(os.environ), health_timeout_s=600, port=port):

        def run(n, rate):
            a = bench_args(
                host="127.0.0.1",
                port=port,
                served_name="m",
                tokenizer=args.model_dir,
                use_case=uc,
                num_requests=n,
                seed=0,
                warmups=2,
                request_rate=rate,
            )
            t = time.time()
            r = bench.run(a)
            r["seconds"] = time.time() - t
            return r

        sat = statistics.fmean(run(counts[0], math.inf)["request_throughput"] for _ in range(2))
        points = [("saturated", math.inf), (f"{args.fraction:g}x", args.fraction * sat)]
        for rep in range(args.repeats):
            for name, rate in points:
                for n in counts:
                    results.setdefault((name, n), []).append(run(n, rate))
            print(f"round {rep + 1}/{args.repeats} done", file=sys.stderr)
    # CV: SD / mean (what a mean of repeats would carry); robust: 1.4826 MAD / median (perf.csv's)
    print(f"{'point':10} {'requests':>8} {'seconds':>8} {'req/s':>8} {'CV':>7} {'robust':>7} {'p99 TTFT robust':>16}")
    for (name, n), rs in results.items():
        thr = [r["request_throughput"] for r in rs]
        mid, _, rcv = spread(thr)
        _, _, rcv_ttft = spread([r["p99_ttft_ms"] for r in rs])
        cv = statistics.stdev(thr) / statistics.fmean(thr) if len(thr) > 1 else 0.0
        secs = statistics.fmean(r["seconds"] for r in rs)
        print(f"{name:10} {n:8d} {secs:8.1f} {mid:8.1f} {cv * 100:6.1f}% {rcv * 100:6.1f}% {rcv_ttft * 100:15.1f}%")
    print(json.dumps({f"{k[0]}@{k[1]}": [r["request_throughput"] for r in v] for k, v in results.items()}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--results", type=Path, default=Path("results"))
    m = sub.add_parser("measure")
    m.add_argument("--model-dir", required=True)
    m.add_argument("--prompt-tokens", type=int, default=64)
    m.add_argument("--output-tokens", type=int, default=2)
    m.add_argument("--counts", default="256,1024", help="requests per point, comma-separated")
    m.add_argument("--repeats", type=int, default=5)
    m.add_argument("--fraction", type=float, default=0.5, help="the Poisson point, as a fraction of saturation")
    m.add_argument(
        "--engine",
        default="{}",
        help='engine arguments over the defaults, JSON: {"distributed_executor_backend": "uni"}',
    )
    m.add_argument("--server-log", default="/tmp/perf_cv.server.log")
    args = ap.parse_args(argv)
    return report(args.results) if args.cmd == "report" else measure(args)


if __name__ == "__main__":
    sys.exit(main())
