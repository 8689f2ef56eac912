"""Serving at a latency target (SLO): the highest request rate a server sustains within it.

An SLO is set per use case (config `performance.use_cases.<uc>.slo`): targets in ms for any of
TTFT, TPOT, ITL and E2E latency at one percentile (default p99). A probe is one `vllm bench
serve` run at a Poisson request rate. It meets the SLO when
- the share of the requests sent that completed within every per-request target (vLLM's
  `--goodput ttft:..,tpot:..,e2el:..`, its `request_goodput`) is at least `goodput_share` of the
  offered load (failed requests count as missed), and
- ITL, which vLLM's goodput does not take (it is per token, not per request), has its
  configured percentile (from the same result) within the ITL target.
With goodput_share = percentile / 100 (the defaults: 0.99 and p99) that is "p99 of every
metric within its target", counted jointly per request, so slightly stricter.

The search (`find_sustained_rate`, pure) starts from the saturated point that perf measures
anyway (request rate inf): if that meets the SLO, the sustained rate is the saturated
throughput. Otherwise it brackets by halving the rate from the saturated throughput (doubling
the distance, as `vllm bench sweep serve_sla` does upwards; from above, because the probes at
high rates are the short ones) until a probe meets the SLO, then bisects until the bracket is
narrower than `precision` x its upper end. The sustained rate is the highest rate that met it:
the true boundary lies within `precision` above it. A rate above the saturated throughput is
never sustained (the server completes no more than that), so the saturated rate caps it.
If even the lowest rate (`lowest_fraction` x saturated) breaks the SLO, there is no sustained
rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

METRICS = ("ttft", "tpot", "itl", "e2el")
GOODPUT_METRICS = ("ttft", "tpot", "e2el")  # vLLM's --goodput takes these, not itl


def targets(slo: dict) -> dict[str, float]:
    """{metric: target ms} of a use case's slo block (keys `<metric>_ms`)."""
    return {m: float(slo[f"{m}_ms"]) for m in METRICS if slo.get(f"{m}_ms") is not None}


def goodput_args(slo: dict) -> list[str]:
    """`vllm bench serve` arguments that count the requests within the per-request targets."""
    pairs = [f"{m}:{v:g}" for m, v in targets(slo).items() if m in GOODPUT_METRICS]
    return ["--goodput", *pairs] if pairs else []


def percentile_key(metric: str, percentile: float) -> str:
    """vLLM's result key of a latency percentile, e.g. p99_ttft_ms, p99.9_itl_ms."""
    return f"p{percentile:g}_{metric}_ms"


def check(result: dict, slo: dict, goodput_share: float, offered: int) -> dict:
    """Whether one probe's `vllm bench serve` result meets the SLO, and why.

    offered: requests sent (--num-prompts). Returns {met, good_share, <metric>: observed
    percentile ms} (the percentiles are reported for every target, for the figure)."""
    p = float(slo.get("percentile", 99))
    t = targets(slo)
    out: dict = {}
    for m in t:
        v = result.get(percentile_key(m, p))
        out[m] = None if v is None else float(v)
    met = True
    good_share = None
    if any(m in GOODPUT_METRICS for m in t):
        thr, good = result.get("request_throughput") or 0.0, result.get("request_goodput")
        completed = result.get("completed") or 0
        if good is None or thr <= 0 or offered <= 0:
            good_share = 0.0
        else:  # good / completed (rates over the same duration) x completed / offered
            good_share = good / thr * completed / offered
        met = good_share >= goodput_share - 1e-12
    if "itl" in t:
        met = met and out["itl"] is not None and out["itl"] <= t["itl"]
    out.update(met=bool(met), good_share=good_share)
    return out


def find_sustained_rate(
    meets: Callable[[float], bool],
    saturated_rps: float,
    saturated_meets: bool,
    *,
    precision: float,
    lowest_fraction: float,
    max_probes: int = 12,
) -> dict:
    """The highest request rate that meets the SLO (see the module docstring).

    meets(rate) runs one probe; saturated_rps / saturated_meets: the saturated point's
    throughput and whether it met the SLO. Returns {sustained_rps (None when even the
    lowest rate breaks it), upper_rps (the lowest rate seen to break it, None when
    saturation meets it), status, probes: [(rate, met), ...] in the order run}."""
    if not (saturated_rps and saturated_rps > 0 and math.isfinite(saturated_rps)):
        return {"sustained_rps": None, "upper_rps": None, "status": "no saturated rate", "probes": []}
    if saturated_meets:
        return {"sustained_rps": saturated_rps, "upper_rps": None, "status": "saturation meets the SLO", "probes": []}
    probes: list[tuple[float, bool]] = []

    def probe(rate):
        ok = bool(meets(rate))
        probes.append((rate, ok))
        return ok

    hi, lo = saturated_rps, None
    rate = saturated_rps / 2
    while len(probes) < max_probes:
        if probe(rate):
            lo = rate
            break
        hi = rate
        if rate / 2 < saturated_rps * lowest_fraction * (1 - 1e-9):
            return {
                "sustained_rps": None,
                "upper_rps": hi,
                "status": "the lowest rate breaks the SLO",
                "probes": probes,
            }
        rate /= 2
    if lo is None:
        return {"sustained_rps": None, "upper_rps": hi, "status": "probe budget spent", "probes": probes}
    while hi - lo > precision * hi and len(probes) < max_probes:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    status = "bracketed" if hi - lo <= precision * hi else "probe budget spent"
    return {"sustained_rps": lo, "upper_rps": hi, "status": status, "probes": probes}
