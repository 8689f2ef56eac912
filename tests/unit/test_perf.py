"""Perf tables from hand-made `vllm bench serve` results with known aggregates."""

import json
import math

import pytest

from quantstudy.core import atomic
from quantstudy.core.tables import read_csv, to_csv
from quantstudy.perf.perf import (
    FIELDS,
    MANIFEST,
    PERF_FORMAT,
    bench_args,
    point_name,
    point_rows,
    slo_observed,
    split_rows,
    spread,
    sweep_rates,
)

ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]  # config/config.yaml's `schemes`, as the rules pass it

UC = {"prompt_tokens": 64, "output_tokens": 32, "requests": 100, "sync_requests": 10}


def raw(rps, e2el, completed=100, concurrency=None, failed=0):
    return {
        "request_throughput": rps,
        "output_throughput": rps * 32,
        "mean_e2el_ms": e2el,
        "p99_e2el_ms": 2 * e2el,
        "mean_ttft_ms": 5.0,
        "completed": completed,
        "failed": failed,
        "max_concurrency": concurrency,
    }


def make_dir(tmp_path, scheme="bf16", runs=None):
    d = tmp_path / scheme
    runs = runs or [
        ("sync", None, 0, raw(2.0, 500.0, 10, 1)),
        ("sync", None, 1, raw(4.0, 250.0, 10, 1)),
        ("async", None, 0, raw(90.0, 900.0)),
        ("async", None, 1, raw(110.0, 800.0)),
        ("async", 0.5, 0, raw(50.0, 300.0)),
        ("async", 0.5, 1, raw(50.0, 300.0)),
    ]
    entries = []
    for mode, frac, rep, result in runs:
        name = point_name("chat", mode, rep, frac)
        atomic.write_json(d / name, result)
        entries.append(
            {
                "file": name,
                "use_case": "chat",
                "mode": mode,
                "rate_fraction": frac,
                "repeat": rep,
                "request_rate": None if frac is None else frac * 100,
            }
        )
    atomic.write_json(
        d / MANIFEST,
        {
            "format": PERF_FORMAT,
            "model": "m",
            "scheme": scheme,
            "gpu": "cpu",
            "hardware": "test CPU",
            "engine": {"dtype": "bfloat16"},
            "vllm_version": "0.0-test",
            "use_cases": {"chat": UC},
            "runs": entries,
        },
    )
    return d


def test_repeats_give_their_median_and_robust_spread(tmp_path):
    rows = {(r["mode"], r["rate_fraction"]): r for r in point_rows(make_dir(tmp_path))}
    sync = rows[("sync", None)]
    assert sync["request_throughput"] == pytest.approx(3.0)
    assert sync["request_throughput_std"] == pytest.approx(1.4826)  # 1.4826 x MAD of 2 and 4
    assert sync["request_throughput_cv"] == pytest.approx(1.4826 / 3.0)
    assert sync["mean_e2el_ms"] == pytest.approx(375.0)
    assert sync["repeats"] == 2 and sync["num_requests"] == 10 and sync["max_concurrency"] == 1
    sat = rows[("async", None)]
    assert sat["request_throughput"] == pytest.approx(100.0) and sat["request_rate"] == "inf"
    assert rows[("async", 0.5)]["request_throughput_cv"] == 0.0
    assert sat["prompt_tokens"] == 64 and sat["hardware"] == "test CPU" and sat["vllm_version"] == "0.0-test"


def test_perf_csv_keeps_sync_and_saturation_the_sweep_keeps_every_async_point(tmp_path):
    main, sweep = split_rows(point_rows(make_dir(tmp_path)), order=ORDER)
    assert [(r["mode"], r["rate_fraction"]) for r in main] == [("sync", None), ("async", None)]
    assert sorted((r["rate_fraction"] or 1.0) for r in sweep) == [0.5, 1.0]


def test_csv_round_trip(tmp_path):
    main, _ = split_rows(point_rows(make_dir(tmp_path)), order=ORDER)
    (tmp_path / "p.csv").write_text(to_csv(main, FIELDS))
    back = read_csv(tmp_path / "p.csv")
    assert back[0]["request_throughput"] == pytest.approx(3.0) and back[0]["scheme"] == "bf16"
    assert back[1]["rate_fraction"] is None


def test_a_damaged_raw_result_is_named(tmp_path):
    d = make_dir(tmp_path)
    (d / "chat/sync-r1.json").write_text('{"request_throughput": 4.')
    with pytest.raises(ValueError, match="sync-r1.json"):
        point_rows(d)


def test_a_missing_manifest_is_named(tmp_path):
    d = make_dir(tmp_path)
    (d / MANIFEST).unlink()
    with pytest.raises(Exception, match="manifest.json"):
        point_rows(d)


def test_sweep_rates_are_fractions_of_the_saturated_rate():
    assert sweep_rates(80.0, [0.75, 0.25]) == [(0.25, 20.0), (0.75, 60.0)]
    assert sweep_rates(0.0, [0.5]) == [] and sweep_rates(float("nan"), [0.5]) == []


def test_spread_of_one_run_has_zero_std_and_empty_input_is_none():
    assert spread([5.0]) == (5.0, 0.0, 0.0)
    assert spread([]) == (None, None, None)


def test_bench_args_sync_and_async():
    common = dict(
        host="127.0.0.1",
        port=8000,
        served_name="m-bf16",
        tokenizer="/m",
        use_case=UC,
        num_requests=10,
        seed=3,
        warmups=4,
    )
    sync = bench_args(**common, max_concurrency=1)
    assert sync[sync.index("--max-concurrency") + 1] == "1" and sync[sync.index("--request-rate") + 1] == "inf"
    assert "--ignore-eos" in sync and sync[sync.index("--num-warmups") + 1] == "4"
    assert sync[sync.index("--random-input-len") + 1] == "64" and sync[sync.index("--random-output-len") + 1] == "32"
    rate = bench_args(**common, request_rate=12.5)
    assert rate[rate.index("--request-rate") + 1] == "12.5" and "--max-concurrency" not in rate


def test_perf_json_is_valid_json(tmp_path):
    d = make_dir(tmp_path)
    assert json.loads((d / MANIFEST).read_text())["format"] == PERF_FORMAT


def test_each_row_says_what_the_hardware_ran(tmp_path):
    """served_as comes from the support matrix: Ampere serves FP8 checkpoints weight-only
    (Marlin), not as W8A8-FP8; Hopper natively; INT8 natively on both."""
    from pathlib import Path

    import yaml

    from quantstudy.core.schemes import arch_of, support

    paper = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/paper.yaml").read_text())
    model = "llama-3.1-8b-instruct"

    def table(gpu):  # make_dir's model/gpu are m/cpu
        return {"m": {"cpu": {s: support(paper, model, s, arch_of(paper, gpu)) for s in paper["schemes"]}}}

    [row, *_] = point_rows(make_dir(tmp_path, "w8a8-fp"), table("a100"))
    assert (row["scheme"], row["served_as"]) == ("w8a8-fp", "FP8 weight-only (Marlin), activations bf16")
    [row, *_] = point_rows(make_dir(tmp_path / "h", "w8a8-fp"), table("h100"))
    assert row["served_as"] == "w8a8-fp8"
    [row, *_] = point_rows(make_dir(tmp_path / "i", "w8a8-int"), table("a100"))
    assert row["served_as"] == "w8a8-int"  # INT8 has tensor cores on Ampere
    assert "served_as" in FIELDS


SLO = {"ttft_ms": 500.0, "tpot_ms": 100.0, "percentile": 99}


def slo_dir(tmp_path, found):
    """A perf dir whose use case ran the SLO search: two probes, the second met it."""
    d = make_dir(tmp_path)
    man = json.loads((d / MANIFEST).read_text())
    man["use_cases"]["chat"] = {**UC, "slo": SLO}
    for i, (rate, met) in enumerate([(50.0, False), (25.0, True)]):
        name = f"chat/slo-probe{i}.json"
        atomic.write_json(d / name, {**raw(rate * 0.98, 400.0 if met else 2000.0), "p99_ttft_ms": 450.0})
        man["runs"].append(
            {
                "file": name,
                "use_case": "chat",
                "mode": "async",
                "rate_fraction": rate / 100,
                "repeat": 0,
                "request_rate": rate,
                "slo_probe": True,
                "slo_met": met,
                "good_share": 1.0 if met else 0.5,
            }
        )
    for run in man["runs"]:
        if run["mode"] == "async" and run["rate_fraction"] is None:
            run.update(slo_met=False, good_share=0.2)
    man["slo"] = {"chat": found}
    atomic.write_json(d / MANIFEST, man)
    return d


def test_the_slo_row_prices_the_sustained_rate_and_the_probes_join_the_sweep(tmp_path):
    found = {
        "sustained_rps": 25.0,
        "upper_rps": 50.0,
        "status": "probe budget spent",
        "sustained_files": ["chat/slo-probe1.json"],
        "sustained_checks": [{"met": True, "good_share": 1.0}],
    }
    main, sweep = split_rows(point_rows(slo_dir(tmp_path, found)), order=ORDER)
    assert [r["mode"] for r in main] == ["sync", "async", "slo"]
    slo = main[2]
    assert slo["request_throughput"] == 25.0 and slo["request_rate"] == "25"
    assert slo["output_throughput"] == 25.0 * UC["output_tokens"]
    assert slo["p99_ttft_ms"] == 450.0 and slo["mean_e2el_ms"] == 400.0  # from the probe that met it
    assert slo["request_throughput_cv"] == pytest.approx((50 - 25) / 25 / 2)  # the search's resolution
    assert slo["slo_met"] is True and json.loads(slo["slo"]) == SLO
    judged = sorted((r["request_rate"], r["slo_met"]) for r in sweep if r.get("slo_met") is not None)
    assert judged == [("25", True), ("50", False), ("inf", False)]
    assert len(sweep) == 4  # saturated, 0.5x, and the two probes (0.5x and the 50 req/s probe stay apart)


def test_no_rate_within_the_slo_has_no_throughput(tmp_path):
    found = {
        "sustained_rps": None,
        "upper_rps": 50.0,
        "status": "the lowest rate breaks the SLO",
        "sustained_files": [],
        "sustained_checks": [],
    }
    main, _ = split_rows(point_rows(slo_dir(tmp_path, found)), order=ORDER)
    slo = main[2]
    assert slo["request_throughput"] is None and slo["slo_met"] is False
    assert slo["slo_status"] == "the lowest rate breaks the SLO"


def test_one_stalled_repeat_does_not_move_the_median():
    mid, sd, cv = spread([100.0, 102.0, 30.0])
    assert mid == 100.0 and sd == pytest.approx(1.4826 * 2.0) and cv == pytest.approx(1.4826 * 0.02)
    assert spread([5.0]) == (5.0, 0.0, 0.0) and spread([None, math.nan]) == (None, None, None)


def test_bench_args_count_goodput_and_ask_for_the_slo_percentile():
    args = bench_args(
        host="h",
        port=1,
        served_name="m",
        tokenizer="t",
        use_case=UC,
        num_requests=4,
        seed=0,
        warmups=0,
        slo={"ttft_ms": 500, "itl_ms": 30, "percentile": 95},
    )
    assert args[args.index("--goodput") + 1 :][:1] == ["ttft:500"] and "itl:30" not in args
    assert args[args.index("--metric-percentiles") + 1] == "50,95,99"


def test_when_saturation_meets_the_slo_its_repeats_give_the_spread(tmp_path):
    found = {
        "sustained_rps": 100.0,
        "upper_rps": None,
        "status": "saturation meets the SLO",
        "sustained_files": ["chat/async-inf-r0.json", "chat/async-inf-r1.json"],
        "sustained_checks": [{"met": True, "good_share": 1.0}, {"met": True, "good_share": 1.0}],
    }
    main, _ = split_rows(point_rows(slo_dir(tmp_path, found)), order=ORDER)
    slo = main[2]
    assert slo["request_throughput"] == 100.0 and slo["repeats"] == 2
    assert slo["request_throughput_cv"] == pytest.approx(1.4826 * 10 / 100)  # 90 and 110 req/s


def test_the_slo_percentile_is_kept_beside_the_p99_columns():
    assert slo_observed([{"ttft": 100.0, "tpot": 5.0}, {"ttft": 300.0, "tpot": 7.0}, {"ttft": 200.0}]) == json.dumps(
        {"tpot": 6.0, "ttft": 200.0}
    )
    assert slo_observed([{}, {}]) is None
