"""Guideline selection on hand-made cost and accuracy tables, with known answers."""

import pytest

from quantstudy.perf.guideline import recommend, scheme_recovery, to_markdown

ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]  # config/config.yaml's `schemes`, as the rules pass it


def acc(model, scheme, suite, rec):
    return {"model": model, "scheme": scheme, "level": "suite", "suite": suite, "recovery_pct": rec}


def cost(scheme, qpd, cv=0.01, mode="async", use_case="chat", model="m", gpu="a100"):
    return {
        "model": model,
        "scheme": scheme,
        "gpu": gpu,
        "mode": mode,
        "use_case": use_case,
        "queries_per_dollar": qpd,
        "request_throughput_cv": cv,
        "cost_reduction_vs_bf16": None,
    }


SUMMARY = [
    acc("m", "bf16", "v1", None),
    acc("m", "w8a8-fp", "v1", 99.9),
    acc("m", "w8a8-int", "v1", 99.2),
    acc("m", "w4a16-int", "v1", 99.5),
    acc("m", "bf16", "v2", None),
    acc("m", "w8a8-fp", "v2", 100.2),
    acc("m", "w8a8-int", "v2", 98.1),
    acc("m", "w4a16-int", "v2", 99.4),
    {"model": "m", "scheme": "w8a8-int", "level": "task", "suite": "v1", "recovery_pct": 50.0},
]


def test_recovery_is_the_lowest_suite_and_bf16_is_100():
    rec = scheme_recovery(SUMMARY)
    assert rec[("m", "bf16")] == (100.0, "v1")
    assert rec[("m", "w8a8-int")] == (98.1, "v2")  # the task row (50%) is not a suite
    assert rec[("m", "w8a8-fp")] == (99.9, "v1")
    assert scheme_recovery(SUMMARY, ["v1"])[("m", "w8a8-int")] == (99.2, "v1")


def test_most_queries_per_dollar_within_the_floor_wins():
    rows = recommend(
        [cost("bf16", 100), cost("w8a8-fp", 180), cost("w8a8-int", 250), cost("w4a16-int", 200)],
        scheme_recovery(SUMMARY),
        99.0,
        order=ORDER,
    )
    (r,) = rows
    assert r["recommended"] == "w4a16-int"  # w8a8-int serves more but drops to 98.1% on v2
    assert r["runner_up"] == "w8a8-fp" and r["margin_pct"] == pytest.approx((200 / 180 - 1) * 100)
    assert "w8a8-int: recovery 98.10% on v2 < 99%" in r["excluded"]
    assert r["eligible"] == "w4a16-int;w8a8-fp;bf16" and r["tie"] is False and r["within_noise"] is False


def test_a_lower_floor_admits_more():
    (r,) = recommend(
        [cost("bf16", 100), cost("w8a8-int", 250), cost("w4a16-int", 200)], scheme_recovery(SUMMARY), 98.0, order=ORDER
    )
    assert r["recommended"] == "w8a8-int" and r["runner_up"] == "w4a16-int"


def test_tie_goes_to_higher_recovery_then_scheme_order():
    rec = scheme_recovery(SUMMARY)
    (r,) = recommend([cost("bf16", 100), cost("w8a8-fp", 200), cost("w4a16-int", 200)], rec, 99.0, order=ORDER)
    assert r["recommended"] == "w8a8-fp" and r["runner_up"] == "w4a16-int"  # 99.9% beats 99.4%
    assert r["tie"] is True and r["margin_pct"] == 0.0
    same = {("m", "bf16"): (100.0, "v1"), ("m", "w8a8-fp"): (100.0, "v1"), ("m", "w4a16-int"): (100.0, "v1")}
    (r,) = recommend([cost("w4a16-int", 100), cost("w8a8-fp", 100), cost("bf16", 100)], same, 99.0, order=ORDER)
    assert r["recommended"] == "bf16" and r["runner_up"] == "w8a8-fp" and r["tie"] is True


def test_schemes_missing_from_either_table_are_excluded_with_the_reason():
    rec = scheme_recovery([acc("m", "bf16", "v1", None), acc("m", "w8a8-fp", "v1", 100.0)])
    (r,) = recommend([cost("bf16", 100), cost("w4a16-int", 400)], rec, 99.0, order=ORDER)
    assert r["recommended"] == "bf16" and r.get("runner_up") is None
    assert "w4a16-int: no accuracy result" in r["excluded"] and "w8a8-fp: no performance result" in r["excluded"]


def test_undefined_recovery_is_excluded_not_treated_as_zero_or_full():
    rec = {("m", "bf16"): (100.0, "v1"), ("m", "w8a8-fp"): (None, "v2")}
    (r,) = recommend([cost("bf16", 1), cost("w8a8-fp", 9)], rec, 99.0, order=ORDER)
    assert r["recommended"] == "bf16" and "w8a8-fp: recovery undefined on v2" in r["excluded"]


def test_no_eligible_scheme():
    rec = {("m", "w8a8-int"): (90.0, "v1")}
    (r,) = recommend([cost("w8a8-int", 9)], rec, 99.0, order=ORDER)
    assert r.get("recommended") is None and r["eligible"] == ""
    assert "none eligible" in to_markdown([r], 99.0, order=ORDER)


def test_small_margin_is_within_noise():
    rec = scheme_recovery(SUMMARY)
    (r,) = recommend([cost("bf16", 100, cv=0.05), cost("w8a8-fp", 105, cv=0.02)], rec, 99.0, order=ORDER)
    assert r["recommended"] == "w8a8-fp" and r["within_noise"] is True  # 5% < 2 x 5%


def test_groups_are_per_model_gpu_mode_and_use_case():
    rec = scheme_recovery(SUMMARY)
    rows = recommend(
        [
            cost("bf16", 1, mode="sync"),
            cost("w4a16-int", 3, mode="sync"),
            cost("bf16", 10),
            cost("w8a8-fp", 30),
            cost("w4a16-int", 20),
        ],
        rec,
        99.0,
        order=ORDER,
    )
    assert {(r["mode"], r["recommended"]) for r in rows} == {("sync", "w4a16-int"), ("async", "w8a8-fp")}


def test_markdown_states_the_rule_and_the_floor():
    rows = recommend([cost("bf16", 100), cost("w8a8-fp", 150)], scheme_recovery(SUMMARY), 97.5, order=ORDER)
    md = to_markdown(rows, 97.5, {"a100": "1x NVIDIA A100"}, order=ORDER)
    assert "97.5%" in md and "most queries per dollar" in md and "1x NVIDIA A100" in md
    assert "| a100 | async | chat | **w8a8-fp** |" in md


def test_the_support_matrix_names_what_cannot_be_served_and_what_is_emulated():
    """A scheme the GPU cannot serve is excluded as such, not as a missing result; an
    emulated recommendation says what actually ran."""
    support = {
        "m": {
            "a100": {
                "bf16": {"status": "native", "served_as": "bf16"},
                "w8a8-fp": {"status": "emulated", "served_as": "FP8 weight-only (Marlin)", "format": "w8a8-fp8"},
                "w8a8-int": {"status": "native", "served_as": "w8a8-int"},
                "w4a16-int": {"status": "unsupported", "served_as": None, "format": "w4a16-int"},
            }
        }
    }
    rows = recommend(
        [cost("bf16", 100.0), cost("w8a8-fp", 300.0), cost("w8a8-int", 200.0)],
        scheme_recovery(SUMMARY),
        99.0,
        ORDER,
        support,
    )
    [row] = rows
    assert row["recommended"] == "w8a8-fp" and row["served_as"] == "emulated as FP8 weight-only (Marlin)"
    assert "w4a16-int: not servable on a100 (w4a16-int: no vLLM kernel)" in row["excluded"]
    md = to_markdown(rows, 99.0, order=ORDER)
    assert "emulated as FP8 weight-only (Marlin)" in md and "not servable on a100" in md


def test_slo_mode_is_its_own_guideline_with_the_search_resolution_as_noise():
    rows = recommend(
        [
            cost("bf16", 100, mode="async"),
            cost("w4a16-int", 300, mode="async"),
            cost("bf16", 80, cv=0.06, mode="slo"),
            cost("w4a16-int", 88, cv=0.06, mode="slo"),  # +10% < twice the 6% half-bracket
            cost("w8a8-fp", None, cv=None, mode="slo"),
        ],
        scheme_recovery(SUMMARY),
        99.0,
        order=ORDER,
    )
    by = {r["mode"]: r for r in rows}
    assert set(by) == {"async", "slo"}
    assert by["async"]["recommended"] == "w4a16-int" and by["async"]["within_noise"] is False
    slo = by["slo"]
    assert slo["recommended"] == "w4a16-int" and slo["runner_up"] == "bf16" and slo["within_noise"] is True
    assert "w8a8-fp: no request rate within the SLO" in slo["excluded"]
    assert "slo = the highest request rate" in to_markdown(rows, 99.0, order=ORDER)
