"""Serving benchmarks: which `vllm bench serve` points to run, and their results as tables.

Per (model, scheme, gpu) one server answers every use case (prompt/output token lengths):
- sync: max concurrency 1, one request at a time -> latency (STUDY.md "synchronous");
- async: every request at once (request rate inf) -> the saturated throughput, then a sweep
  of Poisson request rates at fractions of that saturated rate (the latency/throughput curve).
Every point runs `repeats` times with the same seed (same prompts), after warm-up requests
that are not measured, so the spread across repeats is the run-to-run noise.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from quantstudy.results import read_result
from quantstudy.summary import scheme_key

PERF_FORMAT = "quantstudy.perf/1"
MANIFEST = "manifest.json"
PERCENTILE_METRICS = "ttft,tpot,itl,e2el"
# Raw-result keys averaged over repeats (vllm bench serve's names).
MEASURES = ["request_throughput", "output_throughput", "total_token_throughput",
            "mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms",
            "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms"]
# Measures whose run-to-run spread goes in the table too.
SPREAD = ["request_throughput", "output_throughput", "mean_e2el_ms"]
FIELDS = (["model", "scheme", "served_as", "gpu", "hardware", "use_case", "mode", "prompt_tokens", "output_tokens",
           "request_rate", "rate_fraction", "max_concurrency", "num_requests", "repeats", "failed"]
          + [m for m in MEASURES for m in ([m] + ([f"{m}_std", f"{m}_cv"] if m in SPREAD else []))]
          + ["engine_args", "vllm_version"])


def point_name(use_case: str, mode: str, repeat: int, rate_fraction: float | None = None) -> str:
    """File name (under the perf dir) of one benchmark run."""
    if mode == "sync":
        return f"{use_case}/sync-r{repeat}.json"
    tag = "inf" if rate_fraction is None else f"{rate_fraction:g}x"
    return f"{use_case}/async-{tag}-r{repeat}.json"


def bench_args(*, host: str, port: int, served_name: str, tokenizer: str, use_case: dict, num_requests: int,
               seed: int, warmups: int, request_rate: float = math.inf, max_concurrency: int | None = None) -> list[str]:
    """`vllm bench serve` arguments for one point (the same for the CLI and in-process)."""
    args = ["--backend", "vllm", "--host", host, "--port", str(port), "--model", served_name,
            "--served-model-name", served_name, "--tokenizer", tokenizer,
            "--dataset-name", "random", "--random-input-len", str(use_case["prompt_tokens"]),
            "--random-output-len", str(use_case["output_tokens"]), "--random-range-ratio", "0",
            "--ignore-eos", "--num-prompts", str(num_requests), "--seed", str(seed),
            "--num-warmups", str(warmups), "--request-rate", "inf" if math.isinf(request_rate) else f"{request_rate:.6g}",
            "--percentile-metrics", PERCENTILE_METRICS, "--metric-percentiles", "50,99", "--disable-tqdm"]
    if max_concurrency is not None:
        args += ["--max-concurrency", str(max_concurrency)]
    return args


def sweep_rates(saturated_rps: float, fractions: list[float]) -> list[tuple[float, float]]:
    """(fraction, request rate) below the saturated rate, lowest first; none if it is unknown."""
    if not saturated_rps or saturated_rps <= 0 or not math.isfinite(saturated_rps):
        return []
    return [(f, f * saturated_rps) for f in sorted(fractions) if 0 < f < 1]


def spread(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """(mean, sample std, coefficient of variation) of repeated measurements."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None, None
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return mean, std, (std / mean if mean else None)


def served_as(scheme: str, gpu_spec: dict | None) -> str:
    """What the GPU actually runs for `scheme`: without FP8 tensor cores (Ampere: A6000,
    A100; gpu_types.<g>.fp8: false) vLLM serves an FP8 checkpoint as FP8 weights upcast in a
    weight-only Marlin kernel, activations in bf16: not W8A8-FP8, and its row says so."""
    if scheme == "w8a8-fp" and (gpu_spec or {}).get("fp8") is False:
        return "w8-fp weight-only (Marlin)"
    return scheme


def read_manifest(perf_dir: str | Path) -> dict:
    return read_result(Path(perf_dir) / MANIFEST, PERF_FORMAT,
                       ("model", "scheme", "gpu", "runs", "engine", "vllm_version"), "perf")


def _rate(run: dict) -> str:
    r = run.get("request_rate")
    return "inf" if r is None or (isinstance(r, float) and math.isinf(r)) or r == "inf" else f"{float(r):.4g}"


def point_rows(perf_dir: str | Path, gpu_types: dict | None = None) -> list[dict]:
    """One row per benchmark point (repeats aggregated) of one perf directory; `gpu_types`
    (config's) labels what each GPU type ran (served_as)."""
    perf_dir = Path(perf_dir)
    man = read_manifest(perf_dir)
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for run in man["runs"]:
        key = (run["use_case"], run["mode"], run.get("rate_fraction"))
        path = perf_dir / run["file"]
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: unreadable benchmark result ({e})") from None
        groups.setdefault(key, []).append((run, raw))
    rows = []
    for (use_case, mode, fraction), runs in groups.items():
        first, raw0 = runs[0]
        uc = man["use_cases"][use_case]
        row = {"model": man["model"], "scheme": man["scheme"],
               "served_as": served_as(man["scheme"], (gpu_types or {}).get(man["gpu"])), "gpu": man["gpu"], "hardware": man.get("hardware"),
               "use_case": use_case, "mode": mode, "prompt_tokens": uc["prompt_tokens"],
               "output_tokens": uc["output_tokens"], "request_rate": _rate(first), "rate_fraction": fraction,
               "max_concurrency": raw0.get("max_concurrency"), "num_requests": raw0.get("completed"),
               "repeats": len(runs), "failed": sum(int(raw.get("failed") or 0) for _, raw in runs),
               "engine_args": json.dumps(man["engine"], sort_keys=True), "vllm_version": man["vllm_version"]}
        for m in MEASURES:
            mean, std, cv = spread([raw.get(m) for _, raw in runs])
            row[m] = mean
            if m in SPREAD:
                row[f"{m}_std"], row[f"{m}_cv"] = std, cv
        rows.append(row)
    return rows


def split_rows(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(perf rows: sync + the saturated async point, sweep rows: every async point)."""
    main = [r for r in rows if r["mode"] == "sync" or r["rate_fraction"] is None]
    sweep = [r for r in rows if r["mode"] == "async"]
    key = _order
    return sorted(main, key=key), sorted(sweep, key=key)


def _order(r):
    return (r["model"], r["gpu"], r["use_case"], r["mode"] != "sync", scheme_key(r["scheme"]),
            r["rate_fraction"] if r["rate_fraction"] is not None else math.inf)
