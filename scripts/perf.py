#!/usr/bin/env python
"""Benchmark one checkpoint served by vLLM: every use case, synchronous and asynchronous.

Starts `vllm serve` on 127.0.0.1 on a free port, waits for /health, runs `vllm bench
serve` (random prompts of the use case's lengths, ignore-eos, fixed seed, warm-up requests
excluded) in this process for every point, and stops the server by its process group,
also when a benchmark fails or this job is killed. Raw results + manifest.json land in
--output (a directory that appears only when every point has run).

Rule `perf` calls this; to debug one step by hand (serve env):

    .venv/serve/bin/python scripts/perf.py --model-dir fixtures/tiny-llama --model tiny-llama \\
        --scheme bf16 --gpu cpu --use-cases '{"chat": {"prompt_tokens": 64, "output_tokens": 32, \\
        "requests": 64, "sync_requests": 16}}' --settings '{"repeats": 2, "engine": {"dtype": \\
        "bfloat16", "max_model_len": 2048, "enforce_eager": true}}' --output /tmp/perf \\
        --server-log /tmp/perf.server.log

Each raw JSON records the `vllm bench serve` arguments it ran with, so a point can be
re-run by hand against a server with `vllm bench serve <args>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from quantstudy import atomic, server, step  # noqa: E402
from quantstudy.perf import MANIFEST, PERF_FORMAT, bench_args, point_name, sweep_rates  # noqa: E402
from quantstudy.runtime import add_checkpoint_args, checkpoint_error, hardware_description, engine_threads_env, offline_env, package_versions  # noqa: E402

log = logging.getLogger("perf")

DEFAULTS = {"seed": 0, "repeats": 3, "warmup_requests": 8, "async_rate_fractions": [0.25, 0.5, 0.75],
            "health_timeout_s": 900, "engine": {}, "env": {}}


class Bench:
    """`vllm bench serve` run in this process: vLLM is imported once, not once per point."""

    def __init__(self):
        from vllm.benchmarks.serve import add_cli_args, main

        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:  # older vLLM
            from vllm.utils import FlexibleArgumentParser
        self._parser = FlexibleArgumentParser(prog="vllm bench serve")
        add_cli_args(self._parser)
        self._main = main

    def run(self, args: list[str]) -> dict:
        result = self._main(self._parser.parse_args(args))
        if not result or not result.get("completed"):
            raise RuntimeError(f"vllm bench serve completed no request: {' '.join(args)}")
        return result


def benchmark(model_dir, model, scheme, gpu, use_cases, settings, output, server_log) -> dict:
    s = {**DEFAULTS, **settings}
    served = f"{model}-{scheme}"
    port = server.free_port()
    vllm = shutil.which("vllm", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    cmd = server.serve_command(vllm or "vllm", model_dir, served, port, {**s["engine"], "seed": s["seed"]})
    bench = Bench()
    runs = []
    started = time.time()
    with atomic.directory(output) as tmp, server.running(cmd, server_log, env=dict(os.environ),
                                                         health_timeout_s=s["health_timeout_s"], port=port) as (_, ready_s):
        def point(name, mode, uc_name, uc, n, rate=math.inf, fraction=None, concurrency=None, repeat=0):
            args = bench_args(host="127.0.0.1", port=port, served_name=served, tokenizer=model_dir, use_case=uc,
                              num_requests=n, seed=s["seed"], warmups=s["warmup_requests"], request_rate=rate,
                              max_concurrency=concurrency)
            t = time.time()
            result = bench.run(args)
            result["quantstudy"] = {"args": args, "use_case": uc_name, "mode": mode, "rate_fraction": fraction,
                                    "repeat": repeat, "seconds": round(time.time() - t, 2)}
            atomic.write_json(tmp / name, result)
            runs.append({"file": name, "use_case": uc_name, "mode": mode, "rate_fraction": fraction,
                         "repeat": repeat, "request_rate": None if math.isinf(rate) else rate})
            log.info("%s %s%s r%d: %.3f req/s, %.1f tok/s, mean e2e %.1f ms (%d requests, %.1f s)",
                     uc_name, mode, "" if fraction is None else f" {fraction:g}x", repeat,
                     result["request_throughput"], result["output_throughput"], result.get("mean_e2el_ms", math.nan),
                     result["completed"], time.time() - t)
            return result

        for uc_name, uc in use_cases.items():
            (tmp / uc_name).mkdir(parents=True, exist_ok=True)
            for r in range(s["repeats"]):
                point(point_name(uc_name, "sync", r), "sync", uc_name, uc, uc.get("sync_requests", uc["requests"]),
                      concurrency=1, repeat=r)
            saturated = [point(point_name(uc_name, "async", r), "async", uc_name, uc, uc["requests"], repeat=r)
                         ["request_throughput"] for r in range(s["repeats"])]
            for fraction, rate in sweep_rates(sum(saturated) / len(saturated), s["async_rate_fractions"]):
                for r in range(s["repeats"]):
                    point(point_name(uc_name, "async", r, fraction), "async", uc_name, uc, uc["requests"],
                          rate=rate, fraction=fraction, repeat=r)
        manifest = {
            "format": PERF_FORMAT, "model": model, "scheme": scheme, "gpu": gpu, "checkpoint": model_dir,
            "hardware": hardware_description(), "engine": s["engine"], "settings": {k: v for k, v in s.items()
                                                                                 if k not in ("engine", "env")},
            "use_cases": use_cases, "server": {"command": cmd, "seconds_to_healthy": round(ready_s, 1)},
            "vllm_version": package_versions(["vllm"])["vllm"], "versions": package_versions(["vllm", "torch"]),
            "seconds": round(time.time() - started, 1), "runs": runs,
        }
        atomic.write_json(tmp / MANIFEST, manifest)  # last: the directory is complete
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_args(ap)
    ap.add_argument("--gpu", required=True, help="GPU type name (config gpu_types key), for the record")
    ap.add_argument("--use-cases", required=True, help="JSON {name: {prompt_tokens, output_tokens, requests, "
                                                        "sync_requests}}")
    ap.add_argument("--settings", default="{}", help="the config's performance block (engine, env, seed, repeats, "
                                                     "warmup_requests, async_rate_fractions) as JSON")
    ap.add_argument("--output", required=True, help="output directory (appears only when complete)")
    ap.add_argument("--server-log", required=True, help="file for the vllm serve output")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = json.loads(args.settings)
    problem = checkpoint_error(args.model_dir, args.scheme)  # named before any engine starts
    if problem:
        log.error("%s", problem)
        return 1
    offline_env(settings.get("env"))
    engine_threads_env()
    try:
        m = benchmark(args.model_dir, args.model, args.scheme, args.gpu, json.loads(args.use_cases), settings,
                      args.output, args.server_log)
    except server.ServerError as e:
        log.error("%s", e)
        return 1
    log.info("%d benchmark runs in %.0f s (server healthy after %.0f s)", len(m["runs"]), m["seconds"],
             m["server"]["seconds_to_healthy"])
    return 0


if __name__ == "__main__":
    step.run(main)  # supervised: a finished step cannot fail in teardown
