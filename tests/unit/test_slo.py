"""The SLO search (quantstudy/perf/slo.py) on synthetic latency curves."""

from __future__ import annotations

import pytest

from quantstudy.perf.slo import check, find_sustained_rate, goodput_args, probe_requests, targets

SAT = 100.0  # saturated throughput, req/s


def p99_ttft(rate: float) -> float:
    """A queueing-like curve: latency grows without bound as the rate nears saturation."""
    return 50.0 / (1.0 - min(rate, SAT * 0.999) / SAT)


@pytest.mark.parametrize("target_ms", [60.0, 100.0, 200.0, 400.0, 1000.0])
@pytest.mark.parametrize("precision", [0.05, 0.1, 0.2])
def test_finds_the_boundary_within_the_stated_precision(target_ms, precision):
    boundary = SAT * (1.0 - 50.0 / target_ms)  # where p99_ttft(rate) == target_ms
    out = find_sustained_rate(lambda r: p99_ttft(r) <= target_ms, SAT, False, floor_rps=SAT / 16, precision=precision)
    assert out["status"] == "bracketed"
    lo, hi = out["sustained_rps"], out["upper_rps"]
    assert lo <= boundary <= hi and hi - lo <= precision * hi
    assert p99_ttft(lo) <= target_ms  # the reported rate itself met it
    assert all(ok == (p99_ttft(r) <= target_ms) for r, ok in out["probes"])
    assert out["sustained_rps"] == max(r for r, ok in out["probes"] if ok)


def test_even_the_lowest_rate_breaks_the_slo():
    out = find_sustained_rate(lambda r: p99_ttft(r) <= 40.0, SAT, False, floor_rps=10.0, precision=0.1)
    assert out["sustained_rps"] is None and out["status"] == "the lowest rate breaks the SLO"
    # halving stops at the floor (the sync throughput), which is probed twice before giving up
    assert [r for r, _ in out["probes"]] == [50.0, 25.0, 12.5, 10.0, 10.0]
    assert not any(ok for _, ok in out["probes"]) and out["upper_rps"] == 10.0


def test_a_stall_at_the_floor_is_probed_again():
    seen = []

    def meets(rate):  # the first probe at the floor stalls, the second does not
        seen.append(rate)
        return rate <= 10.0 and seen.count(rate) > 1

    out = find_sustained_rate(meets, SAT, False, floor_rps=10.0, precision=0.5, max_probes=8)
    assert out["sustained_rps"] == 10.0 and out["probes"][-2:] == [(10.0, False), (10.0, True)]
    assert out["status"] == "bracketed" and out["upper_rps"] == 12.5


def test_the_floor_is_at_most_half_the_saturated_rate():
    out = find_sustained_rate(lambda r: False, SAT, False, floor_rps=SAT * 2, precision=0.1)
    assert [r for r, _ in out["probes"]] == [50.0, 50.0]


def test_saturation_still_meets_it():
    calls = []
    out = find_sustained_rate(lambda r: calls.append(r) or True, SAT, True, floor_rps=5.0, precision=0.1)
    assert out["sustained_rps"] == SAT and out["status"] == "saturation meets the SLO"
    assert calls == [] and out["probes"] == []


def test_the_probe_budget_stops_the_search_and_says_so():
    out = find_sustained_rate(lambda r: r <= 63.0, SAT, False, floor_rps=5.0, precision=0.001, max_probes=4)
    assert len(out["probes"]) == 4 and out["status"] == "probe budget spent"
    assert out["sustained_rps"] <= 63.0 < out["upper_rps"]


def test_the_budget_can_run_out_before_any_rate_met_it():
    out = find_sustained_rate(lambda r: False, SAT, False, floor_rps=1.0, precision=0.1, max_probes=3)
    assert out["sustained_rps"] is None and out["status"] == "probe budget spent"
    assert [r for r, _ in out["probes"]] == [50.0, 25.0, 12.5] and out["upper_rps"] == 12.5


def test_a_probe_is_a_duration_of_arrivals_with_a_floor_on_its_count():
    assert probe_requests(94.0, 3.0, 100) == 282
    assert probe_requests(10.0, 3.0, 100) == 100
    assert probe_requests(33.4, 3.0, 1) == 101  # rounded up: never shorter than asked


def result(good_share=1.0, completed=100, p99=None):
    thr = 10.0
    return {
        "completed": completed,
        "request_throughput": thr,
        "request_goodput": thr * good_share,
        **{f"p99_{m}_ms": v for m, v in (p99 or {}).items()},
    }


def test_goodput_share_counts_failed_requests_as_missed():
    slo = {"ttft_ms": 500}
    assert check(result(0.99), slo, 0.99, offered=100)["met"]
    assert not check(result(0.98), slo, 0.99, offered=100)["met"]
    assert not check(result(1.0, completed=98), slo, 0.99, offered=100)["met"]  # 2 failed of 100 sent


def test_itl_is_checked_on_its_percentile_not_on_goodput():
    slo = {"itl_ms": 20, "percentile": 99}
    assert goodput_args(slo) == []
    assert check(result(0.0, p99={"itl": 19.0}), slo, 0.99, offered=100)["met"]
    assert not check(result(1.0, p99={"itl": 21.0}), slo, 0.99, offered=100)["met"]
    assert not check(result(1.0), slo, 0.99, offered=100)["met"]  # no percentile: not shown to meet it


def test_goodput_args_and_targets():
    slo = {"percentile": 95, "ttft_ms": 2000, "tpot_ms": 50.5, "itl_ms": 80}
    assert targets(slo) == {"ttft": 2000.0, "tpot": 50.5, "itl": 80.0}
    assert goodput_args(slo) == ["--goodput", "ttft:2000", "tpot:50.5"]
    r = {"p95_ttft_ms": 1.0, "p95_tpot_ms": 2.0, "p95_itl_ms": 3.0, **result()}
    assert check(r, slo, 0.95, offered=100) == {"ttft": 1.0, "tpot": 2.0, "itl": 3.0, "met": True, "good_share": 1.0}
