"""Queries per dollar and cost reduction vs bf16 on hand-made perf rows."""

import pytest

from quantstudy.perf.cost import cost_rows, queries_per_dollar


def perf(scheme, rps, mode="async", gpu="a100", model="m", use_case="chat", fraction=None):
    return {
        "model": model,
        "scheme": scheme,
        "gpu": gpu,
        "use_case": use_case,
        "mode": mode,
        "request_throughput": rps,
        "output_throughput": None if rps is None else rps * 100,
        "rate_fraction": fraction,
        "request_throughput_cv": 0.01,
    }


GPUS = {"a100": {"price_per_hour": 2.0}, "cpu": {"price_per_hour": 1.0}}


def test_queries_per_dollar():
    assert queries_per_dollar(1.0, 3600.0) == pytest.approx(1.0)
    assert queries_per_dollar(2.0, 2.0) == pytest.approx(3600.0)
    assert queries_per_dollar(None, 2.0) is None and queries_per_dollar(1.0, 0) is None


def test_price_scales_with_the_gpus_a_model_needs_and_ratio_to_bf16():
    rows = cost_rows([perf("bf16", 2.0), perf("w4a16-int", 5.0)], GPUS, {"m": 4})
    bf16, w4 = rows
    assert bf16["hourly_cost"] == 8.0 and bf16["queries_per_dollar"] == pytest.approx(2.0 * 3600 / 8)
    assert w4["cost_reduction_vs_bf16"] == pytest.approx(2.5) and bf16["cost_reduction_vs_bf16"] == pytest.approx(1.0)
    # 100 output tokens per request: $8/h over 500 tok/s
    assert w4["usd_per_million_output_tokens"] == pytest.approx(8 / (500 * 3600) * 1e6)


def test_cpu_model_is_priced_as_one_unit():
    (row,) = cost_rows([perf("bf16", 1.0, gpu="cpu")], GPUS, {"m": 0})
    assert row["hourly_cost"] == 1.0 and row["gpus"] == 0


def test_sweep_points_are_not_costed_and_modes_are_compared_separately():
    rows = cost_rows(
        [
            perf("bf16", 1.0, "sync"),
            perf("bf16", 10.0),
            perf("w8a8-fp", 20.0),
            perf("w8a8-fp", 2.0, "sync"),
            perf("bf16", 5.0, fraction=0.5),
        ],
        GPUS,
        {"m": 1},
    )
    assert len(rows) == 4
    by = {(r["scheme"], r["mode"]): r["cost_reduction_vs_bf16"] for r in rows}
    assert by[("w8a8-fp", "sync")] == pytest.approx(2.0) and by[("w8a8-fp", "async")] == pytest.approx(2.0)


def test_missing_bf16_leaves_the_reduction_empty():
    (row,) = cost_rows([perf("w8a8-int", 3.0)], GPUS, {"m": 1})
    assert row["cost_reduction_vs_bf16"] is None and row["queries_per_dollar"] > 0


def test_unknown_gpu_type_is_named():
    with pytest.raises(KeyError, match="h200"):
        cost_rows([perf("bf16", 1.0, gpu="h200")], GPUS, {"m": 1})


def test_cost_rows_carry_what_the_gpu_ran():
    fp8 = {**perf("w8a8-fp", 3.0), "served_as": "w8-fp weight-only (Marlin)"}
    rows = cost_rows([perf("bf16", 2.0), fp8], GPUS, {"m": 1})
    assert [r["served_as"] for r in rows] == ["bf16", "w8-fp weight-only (Marlin)"]


def test_the_slo_row_is_priced_at_its_sustained_rate_beside_saturation():
    rows = cost_rows(
        [perf("bf16", 10.0), perf("bf16", 4.0, mode="slo"), perf("w4a16-int", 6.0, mode="slo")], GPUS, {"m": 1}
    )
    by = {(r["scheme"], r["mode"]): r for r in rows}
    assert by[("bf16", "slo")]["queries_per_dollar"] == pytest.approx(4.0 * 3600 / 2.0)
    assert by[("w4a16-int", "slo")]["cost_reduction_vs_bf16"] == pytest.approx(1.5)  # vs bf16 at its SLO rate
    assert by[("bf16", "async")]["queries_per_dollar"] == pytest.approx(10.0 * 3600 / 2.0)
    none = cost_rows([perf("bf16", None, mode="slo")], GPUS, {"m": 1})[0]
    assert none["queries_per_dollar"] is None and none["usd_per_million_output_tokens"] is None
