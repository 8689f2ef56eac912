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
the distance, as `vllm bench sweep serve_sla` does upwards; from above, because the low
rates are the long probes, see below) until a probe meets the SLO, then bisects until the bracket is
narrower than `precision` x its upper end. The sustained rate is the highest rate that met it:
the true boundary lies within `precision` above it. A rate above the saturated throughput is
never sustained (the server completes no more than that), so the saturated rate caps it.

The halving stops at a floor: the synchronous point's throughput, the rate a server that
served one request at a time would only just keep up with. A batching server has room to
spare there, so a format whose single requests meet the SLO finds a rate. A miss at the floor is probed once more before the search gives up
("the lowest rate breaks the SLO"): on a shared host one stall of a few seconds breaks a
probe (measured: bench/perf_cv.py), and at the floor nothing but such a stall should.

A probe lasts `probe_seconds` (its request count is the rate x that, at least
`min_requests`), not a fixed count: a fixed count at a high rate is over before a queue has
grown (measured on the fixture: 128 requests at 94 req/s, 1.4 s, p99 TTFT 62 ms; 256 at the
same rate, 2.7 s, 1142 ms), so it would call rates sustained that are not.
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


def probe_requests(rate: float, probe_seconds: float, min_requests: int) -> int:
    """Requests in a probe at `rate` req/s: `probe_seconds` of arrivals, at least min_requests."""
    return max(int(min_requests), math.ceil(rate * probe_seconds))


def find_sustained_rate(
    meets: Callable[[float], bool],
    saturated_rps: float,
    saturated_meets: bool,
    *,
    floor_rps: float,
    precision: float,
    max_probes: int = 12,
) -> dict:
    """The highest request rate that meets the SLO (see the module docstring).

    meets(rate) runs one probe; saturated_rps / saturated_meets: the saturated point's
    throughput and whether it met the SLO; floor_rps: the lowest rate probed (the sync
    throughput; at most half the saturated rate). Returns {sustained_rps (None when even the
    floor breaks it), upper_rps (the lowest rate seen to break it, None when saturation meets
    it), status, probes: [(rate, met), ...] in the order run}."""
    if not (saturated_rps and saturated_rps > 0 and math.isfinite(saturated_rps)):
        return {"sustained_rps": None, "upper_rps": None, "status": "no saturated rate", "probes": []}
    if saturated_meets:
        return {"sustained_rps": saturated_rps, "upper_rps": None, "status": "saturation meets the SLO", "probes": []}
    floor = min(floor_rps, saturated_rps / 2) if floor_rps and floor_rps > 0 else saturated_rps / 2
    probes: list[tuple[float, bool]] = []

    def probe(rate):
        ok = bool(meets(rate))
        probes.append((rate, ok))
        return ok

    def result(lo, hi, status):
        return {"sustained_rps": lo, "upper_rps": hi, "status": status, "probes": probes}

    hi, lo = saturated_rps, None
    rate = max(saturated_rps / 2, floor)
    while lo is None:
        if len(probes) >= max_probes:
            return result(None, hi, "probe budget spent")
        if probe(rate):
            lo = rate
        elif rate <= floor * (1 + 1e-9):
            # a miss at the floor: once more, since a stall of the host alone can cause it
            if len(probes) < max_probes and probe(rate):
                lo = rate
            else:
                return result(None, rate, "the lowest rate breaks the SLO")
        else:
            hi, rate = rate, max(rate / 2, floor)
    while hi - lo > precision * hi and len(probes) < max_probes:
        mid = (lo + hi) / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return result(lo, hi, "bracketed" if hi - lo <= precision * hi else "probe budget spent")
