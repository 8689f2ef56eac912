"""Serving benchmarks: which `vllm bench serve` points to run, and their results as tables.

Per (model, scheme, gpu) one server answers every use case (prompt/output token lengths):
- sync: max concurrency 1, one request at a time -> latency (the paper's "synchronous");
- async: every request at once (request rate inf) -> the saturated throughput, then a sweep
  of Poisson request rates at fractions of that saturated rate (the latency/throughput curve);
- slo (a use case with an `slo`): the search for the highest Poisson rate that meets it
  (quantstudy/perf/slo.py), its probes kept as async points of the curve (perf_sweep.csv).
Every point runs `repeats` times with the same seed (same prompts), after warm-up requests
that are not measured, so the spread across repeats is the run-to-run noise.

The rule's entry point, also run by hand:

    Benchmark one checkpoint served by vLLM: every use case, synchronous and asynchronous.

    Starts `vllm serve` on 127.0.0.1 on a free port, waits for /health, runs `vllm bench
    serve` (random prompts of the use case's lengths, ignore-eos, fixed seed, warm-up requests
    excluded) in this process for every point, and stops the server by its process group,
    also when a benchmark fails or this job is killed. Raw results + manifest.json land in
    --output (a directory that appears only when every point has run).

    Rule `perf` calls this; to debug one step by hand (serve env):

        .venv/serve/bin/python -m quantstudy.perf.perf --model-dir fixtures/tiny-llama --model tiny-llama \\
            --scheme bf16 --gpu cpu --use-cases '{"chat": {"prompt_tokens": 64, "output_tokens": 32, \\
            "requests": 64, "sync_requests": 16}}' --settings '{"repeats": 2, "engine": {"dtype": \\
            "bfloat16", "max_model_len": 2048, "enforce_eager": true}}' --output /tmp/perf \\
            --server-log /tmp/perf.server.log

    Each raw JSON records the `vllm bench serve` arguments it ran with, so a point can be
    re-run by hand against a server with `vllm bench serve <args>`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from quantstudy.core import atomic, cli, server, step
from quantstudy.core.results import read_result
from quantstudy.core.runtime import (
    add_checkpoint_args,
    checkpoint_error,
    engine_threads_env,
    hardware_description,
    offline_env,
    package_versions,
)
from quantstudy.core.schemeorder import scheme_key
from quantstudy.perf import slo as slo_search

PERF_FORMAT = "quantstudy.perf/1"
MANIFEST = "manifest.json"
PERCENTILE_METRICS = "ttft,tpot,itl,e2el"
# Raw-result keys aggregated over repeats, by their median (vllm bench serve's names).
MEASURES = [
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "mean_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "p99_itl_ms",
    "mean_e2el_ms",
    "p99_e2el_ms",
]
# Measures whose run-to-run spread goes in the table too.
SPREAD = ["request_throughput", "output_throughput", "mean_e2el_ms"]
MODES = ("sync", "async", "slo")
FIELDS = (
    [
        "model",
        "scheme",
        "served_as",
        "gpu",
        "hardware",
        "use_case",
        "mode",
        "prompt_tokens",
        "output_tokens",
        "request_rate",
        "rate_fraction",
        "max_concurrency",
        "num_requests",
        "repeats",
        "failed",
    ]
    + [m for m in MEASURES for m in ([m] + ([f"{m}_std", f"{m}_cv"] if m in SPREAD else []))]
    + ["slo", "slo_met", "good_share", "slo_observed", "slo_status", "slo_upper_rps", "engine_args", "vllm_version"]
)


def point_name(use_case: str, mode: str, repeat: int, rate_fraction: float | None = None) -> str:
    """File name (under the perf dir) of one benchmark run."""
    if mode == "sync":
        return f"{use_case}/sync-r{repeat}.json"
    tag = "inf" if rate_fraction is None else f"{rate_fraction:g}x"
    return f"{use_case}/async-{tag}-r{repeat}.json"


def bench_args(
    *,
    host: str,
    port: int,
    served_name: str,
    tokenizer: str,
    use_case: dict,
    num_requests: int,
    seed: int,
    warmups: int,
    request_rate: float = math.inf,
    max_concurrency: int | None = None,
    slo: dict | None = None,
) -> list[str]:
    """`vllm bench serve` arguments for one point (the same for the CLI and in-process)."""
    args = [
        "--backend",
        "vllm",
        "--host",
        host,
        "--port",
        str(port),
        "--model",
        served_name,
        "--served-model-name",
        served_name,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(use_case["prompt_tokens"]),
        "--random-output-len",
        str(use_case["output_tokens"]),
        "--random-range-ratio",
        "0",
        "--ignore-eos",
        "--num-prompts",
        str(num_requests),
        "--seed",
        str(seed),
        "--num-warmups",
        str(warmups),
        "--request-rate",
        "inf" if math.isinf(request_rate) else f"{request_rate:.6g}",
        "--percentile-metrics",
        PERCENTILE_METRICS,
        "--metric-percentiles",
        metric_percentiles(slo),
        "--disable-tqdm",
    ]
    if slo:  # every point of the use case counts its requests within the SLO
        args += slo_search.goodput_args(slo)
    if max_concurrency is not None:
        args += ["--max-concurrency", str(max_concurrency)]
    return args


def metric_percentiles(slo: dict | None) -> str:
    """--metric-percentiles: the median, p99 and the SLO's percentile."""
    ps = {50.0, 99.0} | ({float(slo.get("percentile", 99))} if slo else set())
    return ",".join(f"{p:g}" for p in sorted(ps))


def sweep_rates(saturated_rps: float, fractions: list[float]) -> list[tuple[float, float]]:
    """(fraction, request rate) below the saturated rate, lowest first; none if it is unknown."""
    if not saturated_rps or saturated_rps <= 0 or not math.isfinite(saturated_rps):
        return []
    return [(f, f * saturated_rps) for f in sorted(fractions) if 0 < f < 1]


# 1.4826 x MAD estimates the standard deviation of normal noise (scipy's scale="normal").
MAD_TO_SD = 1.4826


def spread(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """(median, robust standard deviation = 1.4826 x median absolute deviation, their ratio
    as the coefficient of variation) of repeated measurements.

    The median, not the mean: on a shared host the run-to-run spread is mostly stalls (one
    run in about five loses 20-80% of its throughput, measured with `bench.perf_cv
    measure`), which a mean and a sample SD take in whole and a median of three repeats
    ignores; for normal noise both estimate the same."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None, None
    mid = statistics.median(vals)
    sd = MAD_TO_SD * statistics.median(abs(v - mid) for v in vals)
    return mid, sd, (sd / mid if mid else None)


def served_as(man: dict, support: dict | None) -> str:
    """What the hardware actually ran for the scheme, from the support matrix
    (quantstudy/data/support_matrix.yaml): its format when native, else what it is emulated
    as (e.g. FP8 on Ampere: FP8 weight-only Marlin, activations bf16)."""
    entry = (support or {}).get(man["model"], {}).get(man["gpu"], {}).get(man["scheme"]) or {}
    return entry.get("served_as") or man["scheme"]


def read_manifest(perf_dir: str | Path) -> dict:
    return read_result(
        Path(perf_dir) / MANIFEST, PERF_FORMAT, ("model", "scheme", "gpu", "runs", "engine", "vllm_version"), "perf"
    )


def _rate(run: dict) -> str:
    r = run.get("request_rate")
    return "inf" if r is None or (isinstance(r, float) and math.isinf(r)) or r == "inf" else f"{float(r):.4g}"


def row_head(man: dict, use_case: str, mode: str, support: dict | None) -> dict:
    """The columns every perf.csv row starts with: what ran, where, and for which use case."""
    uc = man["use_cases"][use_case]
    return {
        "model": man["model"],
        "scheme": man["scheme"],
        "served_as": served_as(man, support),
        "gpu": man["gpu"],
        "hardware": man.get("hardware"),
        "use_case": use_case,
        "mode": mode,
        "prompt_tokens": uc["prompt_tokens"],
        "output_tokens": uc["output_tokens"],
    }


def point_rows(perf_dir: str | Path, support: dict | None = None) -> list[dict]:
    """One row per benchmark point (repeats aggregated) of one perf directory; `support`
    ({model: {gpu: {scheme: support}}}, quantstudy.core.schemes.support) labels what each GPU
    type ran (served_as)."""
    perf_dir = Path(perf_dir)
    man = read_manifest(perf_dir)
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    by_file = {}
    for run in man["runs"]:
        key = (run["use_case"], run["mode"], run.get("rate_fraction"), run.get("slo_probe", False))
        path = perf_dir / run["file"]
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: unreadable benchmark result ({e})") from None
        groups.setdefault(key, []).append((run, raw))
        by_file[run["file"]] = raw
    rows = []
    for (use_case, mode, fraction, _), runs in groups.items():
        first, raw0 = runs[0]
        row = {
            **row_head(man, use_case, mode, support),
            "request_rate": _rate(first),
            "rate_fraction": fraction,
            "max_concurrency": raw0.get("max_concurrency"),
            "num_requests": raw0.get("completed"),
            "repeats": len(runs),
            "failed": sum(int(raw.get("failed") or 0) for _, raw in runs),
            "engine_args": json.dumps(man["engine"], sort_keys=True),
            "vllm_version": man["vllm_version"],
        }
        for m in MEASURES:
            mid, sd, cv = spread([raw.get(m) for _, raw in runs])
            row[m] = mid
            if m in SPREAD:
                row[f"{m}_std"], row[f"{m}_cv"] = sd, cv
        if all("slo_met" in run for run, _ in runs):  # a point the SLO search judged
            row["slo_met"] = all(run["slo_met"] for run, _ in runs)
            row["good_share"] = min(run["good_share"] for run, _ in runs)
            row["slo_observed"] = slo_observed([run.get("slo_observed") or {} for run, _ in runs])
        rows.append(row)
    for use_case, found in man.get("slo", {}).items():
        rows.append(slo_row(man, use_case, found, by_file, support))
    return rows


def slo_observed(per_run: list[dict]) -> str | None:
    """The SLO's metrics at its configured percentile (ms), median over the runs, as JSON
    ({"ttft": 812.0, ...}; the p99_* columns stay p99 whatever the SLO's percentile)."""
    metrics = sorted({m for obs in per_run for m in obs})
    if not metrics:
        return None
    return json.dumps({m: spread([obs.get(m) for obs in per_run])[0] for m in metrics}, sort_keys=True)


def slo_row(man: dict, use_case: str, found: dict, by_file: dict, support: dict | None) -> dict:
    """perf.csv's `slo` row of a use case: the sustained rate as its request throughput
    (queries per dollar are priced at it), latencies from the probe that met the SLO at that
    rate (the saturated runs' medians when saturation met it). There is one search, not
    repeats: the search's resolution, (upper - sustained) / sustained / 2, stands in for the
    run-to-run CV (the guideline's noise: a margin under the bracket is within noise); when
    saturation met it, the saturated repeats' own CV."""
    uc = man["use_cases"][use_case]
    rate, upper = found["sustained_rps"], found["upper_rps"]
    raws = [by_file[f] for f in found["sustained_files"]]
    row = {
        **row_head(man, use_case, "slo", support),
        "request_rate": "" if rate is None else f"{rate:.4g}",
        "rate_fraction": None,
        "max_concurrency": None,
        "num_requests": raws[0].get("completed") if raws else None,
        "repeats": len(raws),
        "failed": sum(int(raw.get("failed") or 0) for raw in raws),
        "slo": json.dumps(uc["slo"], sort_keys=True),
        "slo_met": rate is not None,
        "good_share": min((r["good_share"] for r in found["sustained_checks"]), default=None),
        "slo_observed": slo_observed(
            [{m: c.get(m) for m in slo_search.targets(uc["slo"])} for c in found["sustained_checks"]]
        ),
        "slo_status": found["status"],
        "slo_upper_rps": upper,
        "engine_args": json.dumps(man["engine"], sort_keys=True),
        "vllm_version": man["vllm_version"],
    }
    for m in MEASURES:
        row[m] = spread([raw.get(m) for raw in raws])[0]
    row["request_throughput"] = rate
    row["request_throughput_std"] = None
    if rate and upper:
        row["request_throughput_cv"] = (upper - rate) / rate / 2
    else:  # saturation met it: the saturated repeats' own spread (None: no rate met it)
        row["request_throughput_cv"] = spread([raw.get("request_throughput") for raw in raws])[2] if rate else None
    if rate is not None and raws:  # output tokens per s at the sustained rate
        row["output_throughput"] = rate * uc["output_tokens"]
        row["total_token_throughput"] = rate * (uc["output_tokens"] + uc["prompt_tokens"])
    return row


def split_rows(rows: list[dict], order: list[str]) -> tuple[list[dict], list[dict]]:
    """(perf rows: sync, the saturated async point and the slo row, sweep rows: every async
    point, the SLO search's probes among them), each
    sorted by model, gpu, use case, mode, then scheme in `order` (the config's `schemes`)."""
    main = [r for r in rows if r["mode"] != "async" or r["rate_fraction"] is None]
    sweep = [r for r in rows if r["mode"] == "async"]
    by_scheme = scheme_key(order)

    def key(r):
        return (
            r["model"],
            r["gpu"],
            r["use_case"],
            MODES.index(r["mode"]),
            by_scheme(r["scheme"]),
            r["rate_fraction"] if r["rate_fraction"] is not None else math.inf,
        )

    return sorted(main, key=key), sorted(sweep, key=key)


log = logging.getLogger("perf")


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
    s = settings  # the config's performance block, defaults filled from the schema
    served = f"{model}-{scheme}"
    port = server.free_port()
    vllm = shutil.which("vllm", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    cmd = server.serve_command(vllm or "vllm", model_dir, served, port, {**s["engine"], "seed": s["seed"]})
    bench = Bench()
    runs = []
    found: dict[str, dict] = {}  # use case -> its SLO search
    started = time.time()
    with (
        atomic.directory(output) as tmp,
        server.running(cmd, server_log, env=dict(os.environ), health_timeout_s=s["health_timeout_s"], port=port) as (
            _,
            ready_s,
        ),
    ):

        def point(name, mode, uc_name, uc, n, rate=math.inf, fraction=None, concurrency=None, repeat=0, **extra):
            args = bench_args(
                host="127.0.0.1",
                port=port,
                served_name=served,
                tokenizer=model_dir,
                use_case=uc,
                num_requests=n,
                seed=s["seed"],
                warmups=s["warmup_requests"],
                request_rate=rate,
                max_concurrency=concurrency,
                slo=uc.get("slo"),
            )
            t = time.time()
            result = bench.run(args)
            result["quantstudy"] = {
                "args": args,
                "use_case": uc_name,
                "mode": mode,
                "rate_fraction": fraction,
                "repeat": repeat,
                "seconds": round(time.time() - t, 2),
            }
            atomic.write_json(tmp / name, result)
            runs.append(
                {
                    "file": name,
                    "use_case": uc_name,
                    "mode": mode,
                    "rate_fraction": fraction,
                    "repeat": repeat,
                    "request_rate": None if math.isinf(rate) else rate,
                    **extra,
                }
            )
            log.info(
                "%s %s%s r%d: %.3f req/s, %.1f tok/s, mean e2e %.1f ms (%d requests, %.1f s)",
                uc_name,
                mode,
                "" if fraction is None else f" {fraction:g}x",
                repeat,
                result["request_throughput"],
                result["output_throughput"],
                result.get("mean_e2el_ms", math.nan),
                result["completed"],
                time.time() - t,
            )
            return result

        for uc_name, uc in use_cases.items():
            (tmp / uc_name).mkdir(parents=True, exist_ok=True)
            sync_results = [
                point(
                    point_name(uc_name, "sync", r),
                    "sync",
                    uc_name,
                    uc,
                    uc.get("sync_requests", uc["requests"]),
                    concurrency=1,
                    repeat=r,
                )
                for r in range(s["repeats"])
            ]
            sat_results = [
                point(point_name(uc_name, "async", r), "async", uc_name, uc, uc["requests"], repeat=r)
                for r in range(s["repeats"])
            ]
            saturated = [x["request_throughput"] for x in sat_results]
            if uc.get("slo"):
                found[uc_name] = search_slo(point, uc_name, uc, sync_results, sat_results, runs, s["slo_search"])
            for fraction, rate in sweep_rates(statistics.median(saturated), s["async_rate_fractions"]):
                for r in range(s["repeats"]):
                    point(
                        point_name(uc_name, "async", r, fraction),
                        "async",
                        uc_name,
                        uc,
                        uc["requests"],
                        rate=rate,
                        fraction=fraction,
                        repeat=r,
                    )
        manifest = {
            "format": PERF_FORMAT,
            "model": model,
            "scheme": scheme,
            "gpu": gpu,
            "checkpoint": model_dir,
            "hardware": hardware_description(),
            "engine": s["engine"],
            "settings": {k: v for k, v in s.items() if k not in ("engine", "env")},
            "use_cases": use_cases,
            "server": {"command": cmd, "seconds_to_healthy": round(ready_s, 1)},
            "vllm_version": package_versions(["vllm"])["vllm"],
            "versions": package_versions(["vllm", "torch"]),
            "seconds": round(time.time() - started, 1),
            "runs": runs,
            "slo": found,
        }
        atomic.write_json(tmp / MANIFEST, manifest)  # last: the directory is complete
    return manifest


def search_slo(
    point, uc_name: str, uc: dict, sync_results: list[dict], sat_results: list[dict], runs: list[dict], conf: dict
) -> dict:
    """Run the SLO search of one use case (quantstudy/perf/slo.py) with `point` as its probe,
    right after its saturated runs (the last of `runs`); every probe lands in the manifest's
    runs (slo_probe: true) with whether it met the SLO. The saturated point meets it only
    when every repeat does; the sync point's throughput is the lowest rate probed."""
    slo, share = uc["slo"], conf["goodput_share"]
    sat_runs = runs[-len(sat_results) :]
    sat_checks = [slo_search.check(res, slo, share, uc["requests"]) for res in sat_results]
    metrics = list(slo_search.targets(slo))
    for run, c in zip(sat_runs, sat_checks, strict=True):
        run.update(slo_met=c["met"], good_share=c["good_share"], slo_observed={m: c[m] for m in metrics})
    sat_rps = statistics.median(x["request_throughput"] for x in sat_results)
    floor_rps = statistics.median(x["request_throughput"] for x in sync_results) if sync_results else None
    probe_runs: list[tuple[str, dict]] = []

    def meets(rate: float) -> bool:
        i = len(probe_runs)
        name = f"{uc_name}/slo-probe{i}.json"
        n = slo_search.probe_requests(rate, conf["probe_seconds"], conf["min_requests"])
        res = point(name, "async", uc_name, uc, n, rate=rate, fraction=rate / sat_rps, slo_probe=True)
        c = slo_search.check(res, slo, share, n)
        runs[-1].update(slo_met=c["met"], good_share=c["good_share"], slo_observed={m: c[m] for m in metrics})
        probe_runs.append((name, c))
        log.info(
            "%s SLO probe %.4g req/s: %s (good share %s)",
            uc_name,
            rate,
            "met" if c["met"] else "missed",
            c["good_share"],
        )
        return c["met"]

    out = slo_search.find_sustained_rate(
        meets,
        sat_rps,
        all(c["met"] for c in sat_checks),
        floor_rps=floor_rps,
        precision=conf["precision"],
        max_probes=conf["max_probes"],
    )
    rate = out["sustained_rps"]
    if rate is None:
        files, checks = [], []
    elif not out["probes"]:  # saturation met it
        files, checks = [r["file"] for r in sat_runs], sat_checks
    else:
        i = next(i for i, (r, ok) in enumerate(out["probes"]) if ok and r == rate)
        files, checks = [probe_runs[i][0]], [probe_runs[i][1]]
    log.info("%s: sustained %s req/s within the SLO (%s)", uc_name, rate, out["status"])
    return {
        **out,
        "slo": slo,
        "goodput_share": share,
        "precision": conf["precision"],
        "saturated_rps": sat_rps,
        "sustained_files": files,
        "sustained_checks": checks,
    }


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    add_checkpoint_args(ap)
    ap.add_argument("--gpu", required=True, help="GPU type name (config gpu_types key), for the record")
    ap.add_argument(
        "--use-cases", required=True, help="JSON {name: {prompt_tokens, output_tokens, requests, sync_requests}}"
    )
    ap.add_argument(
        "--settings",
        default="{}",
        help="the config's performance block (engine, env, seed, repeats, "
        "warmup_requests, async_rate_fractions) as JSON",
    )
    ap.add_argument("--output", required=True, help="output directory (appears only when complete)")
    ap.add_argument("--server-log", required=True, help="file for the vllm serve output")
    args = ap.parse_args(argv)
    settings = json.loads(args.settings)
    problem = checkpoint_error(args.model_dir, args.scheme)  # named before any engine starts
    if problem:
        raise cli.StepError(problem)
    offline_env(settings.get("env"))
    engine_threads_env()
    try:
        m = benchmark(
            args.model_dir,
            args.model,
            args.scheme,
            args.gpu,
            json.loads(args.use_cases),
            settings,
            args.output,
            args.server_log,
        )
    except server.ServerError as e:
        raise cli.StepError(e) from e
    log.info(
        "%d benchmark runs in %.0f s (server healthy after %.0f s)",
        len(m["runs"]),
        m["seconds"],
        m["server"]["seconds_to_healthy"],
    )
    return 0


if __name__ == "__main__":
    step.run(main)  # supervised: a finished step cannot fail in teardown
