"""The report's data helpers on hand-made frames: Pareto front, recovery bars (with and
without interval columns), trade-off panels, hardware labels, markdown tables as HTML.
Stdlib only; the drawing itself is tested in the analysis env (test_plots_draw.py)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from quantstudy.report import plots, reporthtml
from quantstudy.report.plots import pareto_front

ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]  # config/config.yaml's `schemes`, as the rules pass it


# ------------------------------------------------------------------ Pareto front


def test_pareto_single_point_is_the_front():
    assert pareto_front([(1.0, 99.0)]) == [True]


def test_pareto_empty():
    assert pareto_front([]) == []


def test_pareto_dominated_points_are_off_the_front():
    # (throughput, recovery): c beats a in both; b trades throughput for accuracy.
    pts = [(1.0, 99.0), (0.5, 100.0), (2.0, 99.5), (0.4, 98.0)]
    assert pareto_front(pts) == [False, True, True, False]


def test_pareto_ties():
    # identical points: neither dominates the other, both stay on the front
    assert pareto_front([(1.0, 100.0), (1.0, 100.0)]) == [True, True]
    # equal in one coordinate, better in the other: the better one dominates
    assert pareto_front([(1.0, 100.0), (2.0, 100.0)]) == [False, True]
    assert pareto_front([(1.0, 99.0), (1.0, 100.0)]) == [False, True]


def test_pareto_missing_coordinate_is_never_on_the_front_and_dominates_nothing():
    assert pareto_front([(None, 100.0), (1.0, 99.0), (2.0, None)]) == [False, True, False]


# ------------------------------------------------------------------ summary frames


def summary(ci: bool) -> list[dict]:
    """summary.csv rows as csv gives them: strings; blank cells for missing values."""
    rows = []

    def add(scheme, level, task, metric, score, rec, lo="", hi="", sig=""):
        r = {
            "model": "m",
            "scheme": scheme,
            "level": level,
            "suite": "s",
            "task": task,
            "metric": metric,
            "score": score,
            "stderr": "0.01",
            "n": "100",
            "bf16_score": "",
            "bf16_stderr": "",
            "recovery_pct": rec,
        }
        if ci:
            r.update(recovery_ci_low=lo, recovery_ci_high=hi, drop_significant=sig, n_paired="100" if lo else "")
        rows.append(r)

    for scheme, a, b in (("bf16", "100.0", "100.0"), ("w8a8-int", "97.0", "101.0"), ("w4a16-int", "99.0", "98.0")):
        quant = scheme != "bf16"
        add(scheme, "task", "t1", "acc,none", "0.5", a, *(("95.0", "99.0", "True") if quant else ()))
        add(scheme, "task", "t1", "acc_norm,none", "0.5", "50.0")  # not the primary metric: not drawn
        add(scheme, "task", "t2", "exact_match,strict", "0.8", b, *(("99.0", "103.0", "False") if quant else ()))
        suite_rec = str((float(a) + float(b)) / 2)
        add(
            scheme,
            "suite",
            "s",
            "mean(t1:acc,none;t2:exact_match,strict)",
            "0.65",
            suite_rec,
            *(("97.5", "100.5", "False") if quant else ()),
        )
    rows.append(
        {
            "model": "m",
            "scheme": "w8a8-int",
            "level": "similarity",
            "suite": "similarity",
            "task": "prompts",
            "metric": "rouge1",
            "score": "0.9",
            "stderr": "0.02",
            "n": "10",
            "bf16_score": "",
            "bf16_stderr": "",
            "recovery_pct": "",
        }
    )
    return rows


def test_primary_metric_is_the_one_the_suite_averages():
    prim = plots.primary_metrics(summary(ci=False))
    assert prim[("m", "t1")] == "acc,none" and prim[("m", "t2")] == "exact_match,strict"


def test_recovery_bars_with_intervals():
    rows = summary(ci=True)
    assert plots.has_intervals(rows)
    d = plots.recovery_bars_data(rows, order=ORDER)["m"]
    assert d["groups"] == [("task", "t1"), ("task", "t2"), ("suite", "s")]
    assert d["schemes"] == ["w8a8-int", "w4a16-int"]  # bf16 is the 100% line, not a bar
    c = d["cells"][("task", "t1", "w8a8-int")]
    assert (c["recovery"], c["low"], c["high"], c["significant"]) == (97.0, 95.0, 99.0, True)
    assert d["cells"][("suite", "s", "w4a16-int")]["recovery"] == pytest.approx(98.5)


def test_recovery_bars_without_interval_columns():
    rows = summary(ci=False)
    assert "recovery_ci_low" not in rows[0]
    assert not plots.has_intervals(rows)
    d = plots.recovery_bars_data(rows, order=ORDER)["m"]
    c = d["cells"][("task", "t1", "w8a8-int")]
    assert c["low"] is None and c["high"] is None and c["significant"] is False


def test_interval_columns_present_but_blank_count_as_none():
    rows = summary(ci=True)
    for r in rows:
        r["recovery_ci_low"] = r["recovery_ci_high"] = ""
    assert not plots.has_intervals(rows)


def test_scheme_accuracy_is_the_mean_suite_recovery():
    rows = summary(ci=False)
    rows.append(dict(rows[-2], suite="s2", task="s2", recovery_pct="96.5"))  # a second suite for w4a16-int
    acc = plots.scheme_accuracy(rows)
    assert acc[("m", "bf16")] == 100.0
    assert acc[("m", "w8a8-int")] == pytest.approx(99.0)
    assert acc[("m", "w4a16-int")] == pytest.approx((98.5 + 96.5) / 2)


def test_num_tolerates_blank_and_non_finite():
    assert plots.num("") is None and plots.num(None) is None and plots.num("nan") is None
    assert plots.num("x") is None and plots.num(" 1.5 ") == 1.5


def test_similarity_bars_from_similarity_rows_only():
    rows = summary(ci=False)
    rows.append(dict(rows[-1], metric="kl_per_token", score="0.001"))  # not a 0-1 similarity: not drawn
    rows.append(dict(rows[-2], metric="bertscore_f1", score="0.97", stderr=""))
    d = plots.similarity_bars_data(rows, order=ORDER)["m"]
    assert d["metrics"] == ["rouge1", "bertscore_f1"] and d["labels"] == ["ROUGE-1 F", "BERTScore F1"]
    assert d["schemes"] == ["w8a8-int"]
    assert d["cells"][("rouge1", "w8a8-int")] == (0.9, 0.02)
    assert d["cells"][("bertscore_f1", "w8a8-int")] == (0.97, None)
    assert plots.similarity_bars_data([r for r in rows if r["level"] != "similarity"], order=ORDER) == {}


# ------------------------------------------------------------------ trade-off panels


def perf_rows():
    rows = []
    for scheme, f in (("bf16", 1.0), ("w8a8-int", 2.0), ("w4a16-int", 4.0)):
        for uc, base in (("rag", 1.0), ("chat", 4.0)):
            for mode, m in (("sync", 1.0), ("async", 3.0)):
                rows.append(
                    {
                        "model": "m",
                        "scheme": scheme,
                        "gpu": "h100",
                        "use_case": uc,
                        "mode": mode,
                        "request_throughput": str(base * f * m),
                        "hardware": "NVIDIA H100 80GB HBM3",
                    }
                )
    # a use case only bf16 has: left out, so every scheme is summarized over the same use cases
    rows.append(
        {
            "model": "m",
            "scheme": "bf16",
            "gpu": "h100",
            "use_case": "summarize",
            "mode": "sync",
            "request_throughput": "0.01",
            "hardware": "NVIDIA H100 80GB HBM3",
        }
    )
    return rows


def test_tradeoff_panels_geometric_mean_over_common_use_cases_and_front():
    panels = plots.tradeoff_panels(summary(ci=False), perf_rows(), "request_throughput", order=ORDER)
    assert [(p["model"], p["gpu"], p["mode"]) for p in panels] == [("m", "h100", "sync"), ("m", "h100", "async")]
    sync = panels[0]
    assert sync["use_cases"] == ["chat", "rag"]
    pts = {p["scheme"]: p for p in sync["points"]}
    assert pts["bf16"]["x"] == pytest.approx(math.sqrt(1.0 * 4.0))
    assert pts["w4a16-int"]["x"] == pytest.approx(4 * math.sqrt(4.0))
    # y: bf16 100, w8a8-int 99, w4a16-int 98.5: each is more accurate than every faster
    # scheme, so no scheme is dominated
    assert [pts[s]["front"] for s in ("bf16", "w8a8-int", "w4a16-int")] == [True, True, True]


def test_tradeoff_dominated_scheme_is_marked():
    rows = summary(ci=False)
    for r in rows:  # w8a8-int now less accurate than w4a16-int, and slower: dominated
        if r["scheme"] == "w8a8-int" and r["level"] == "suite":
            r["recovery_pct"] = "90.0"
    pts = {
        p["scheme"]: p for p in plots.tradeoff_panels(rows, perf_rows(), "request_throughput", order=ORDER)[0]["points"]
    }
    assert pts["w8a8-int"]["front"] is False and pts["w4a16-int"]["front"] and pts["bf16"]["front"]


def test_tradeoff_scheme_without_accuracy_is_drawn_nowhere_on_the_front():
    rows = [r for r in summary(ci=False) if r["scheme"] != "w4a16-int"]
    pts = {
        p["scheme"]: p for p in plots.tradeoff_panels(rows, perf_rows(), "request_throughput", order=ORDER)[0]["points"]
    }
    assert pts["w4a16-int"]["y"] is None and pts["w4a16-int"]["front"] is False


def test_hardware_labels(tmp_path):
    f = tmp_path / "perf.csv"
    rows = perf_rows()
    with open(f, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert plots.hardware_by_gpu(rows) == {"h100": "NVIDIA H100 80GB HBM3"}
    assert plots.perf_hardware(f) == "NVIDIA H100 80GB HBM3"
    assert plots.perf_hardware(tmp_path / "missing.csv") == "not recorded"

    class Input:
        perf = str(f)

    assert plots.report_labels("x")(None, input=Input) == {"figure": "x", "hardware": "NVIDIA H100 80GB HBM3"}
    Input.perf = [str(f)]  # the rule's input: a list, empty without a performance stage
    assert plots.report_labels("x")(None, input=Input)["hardware"] == "NVIDIA H100 80GB HBM3"
    Input.perf = []
    assert plots.report_labels("x")(None, input=Input)["hardware"] == "no performance data"


# ------------------------------------------------------------------ HTML tables


def test_markdown_tables_become_html():
    md = "# T\n\nSome **bold** and `a<b`.\n\n| a | b |\n|---|---|\n| 1 | `x,y` |\n| 2 | 3 |\n\n- one\n- two\n"
    h = reporthtml.markdown_to_html(md)
    assert "<h1>T</h1>" in h and "<strong>bold</strong>" in h and "<code>a&lt;b</code>" in h
    assert "<th>a</th><th>b</th>" in h and "<td><code>x,y</code></td>" in h and h.count("<tr>") == 3
    assert "<li>one</li>" in h


def test_recovery_and_similarity_pages():
    rows = summary(ci=True)
    rec = reporthtml.recovery_page(rows, order=ORDER)
    assert rec.startswith("<!DOCTYPE html>") and "<h2>m</h2>" in rec and "(97.0%" in rec
    assert "http" not in rec  # self-contained: no external resource
    sim = reporthtml.similarity_page(rows, order=ORDER)
    assert "drift from bf16" in sim and "ROUGE-1 F" in sim
    none = reporthtml.similarity_page([r for r in rows if r["level"] != "similarity"], order=ORDER)
    assert "did not run" in none


def slo_inputs():
    """perf.csv slo rows and perf_sweep.csv points of two schemes for one use case."""
    slo = json.dumps({"ttft_ms": 500, "tpot_ms": 50, "percentile": 99})
    perf = [
        {
            "model": "m",
            "gpu": "cpu",
            "use_case": "chat",
            "mode": "slo",
            "scheme": s,
            "slo": slo,
            "request_throughput": v,
        }
        for s, v in (("w4a16-int", "30"), ("bf16", ""))
    ]
    sweep = [
        {
            "model": "m",
            "gpu": "cpu",
            "use_case": "chat",
            "scheme": s,
            "request_rate": rate,
            "request_throughput": thr,
            "p99_ttft_ms": ttft,
            "slo_met": met,
        }
        for s, rate, thr, ttft, met in (
            ("w4a16-int", "inf", "80", "3000", "false"),
            ("w4a16-int", "40", "39", "900", "false"),
            ("w4a16-int", "30", "29.5", "300", "true"),
            ("bf16", "inf", "50", "5000", "false"),
            ("bf16", "25", "24", "800", "false"),
            ("other-model", "25", "24", "800", "false"),
        )
    ]
    sweep[-1]["model"] = "other"
    return perf, sweep


def test_slo_panels_draw_each_schemes_curve_and_sustained_rate():
    perf, sweep = slo_inputs()
    (p,) = plots.slo_panels(perf, sweep, ORDER)
    assert (p["metric"], p["target_ms"], p["use_case"]) == ("ttft", 500.0, "chat")
    assert list(p["schemes"]) == ["bf16", "w4a16-int"]  # the config's order
    w4 = p["schemes"]["w4a16-int"]
    assert w4["sustained"] == 30.0 and w4["points"] == [
        (30.0, 300.0, True),
        (40.0, 900.0, False),
        (80.0, 3000.0, False),
    ]
    assert p["schemes"]["bf16"]["sustained"] is None and len(p["schemes"]["bf16"]["points"]) == 2


def test_slo_panels_draw_the_slos_own_percentile_where_it_was_recorded():
    perf, sweep = slo_inputs()
    for r in perf:
        r["slo"] = json.dumps({"ttft_ms": 500, "percentile": 95})
    sweep[2]["slo_observed"] = json.dumps({"ttft": 250.0})  # p95 of the probe at 30 req/s
    (p,) = plots.slo_panels(perf, sweep, ORDER)
    assert p["percentile"] == 95.0
    assert (30.0, 250.0, True) in p["schemes"]["w4a16-int"]["points"]
