import csv
import io
import math

import pytest

from quantstudy.summary.summary import FIELDS, build_rows, mean_stderr, recovery_pct, to_csv, to_markdown
from tests.schema import defaults

ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]  # config/config.yaml's `schemes`, as the rules pass it


def ev(scheme, task, score, stderr=0.01, suite="s", metric="acc,none", n=100, extra=None):
    metrics = {metric: {"score": score, "stderr": stderr}}
    metrics.update(extra or {})
    return {"model": "m", "scheme": scheme, "task": task, "suite": suite, "metrics": metrics, "n_samples": n}


def test_recovery_pct():
    assert recovery_pct(0.45, 0.5) == pytest.approx(90.0)
    assert recovery_pct(0.5, 0.0) is None
    assert recovery_pct(0.5, None) is None


def test_mean_stderr():
    assert mean_stderr([0.03, 0.04]) == pytest.approx(0.025)
    assert mean_stderr([0.03, None]) is None


def test_task_rows_and_bf16_recovery():
    rows = build_rows([ev("bf16", "a", 0.8), ev("w4a16-int", "a", 0.6)], order=ORDER)
    q = [r for r in rows if r["scheme"] == "w4a16-int" and r["level"] == "task"][0]
    assert q["bf16_score"] == 0.8 and q["recovery_pct"] == pytest.approx(75.0)
    b = [r for r in rows if r["scheme"] == "bf16" and r["level"] == "task"][0]
    assert b["recovery_pct"] == pytest.approx(100.0)


def test_suite_recovery_is_ratio_of_averages_not_mean_of_ratios():
    evals = [
        ev("bf16", "easy", 0.9),
        ev("bf16", "hard", 0.1),
        ev("w8a8-int", "easy", 0.9),
        ev("w8a8-int", "hard", 0.05),
    ]
    rows = build_rows(evals, order=ORDER)
    suite = [r for r in rows if r["level"] == "suite" and r["scheme"] == "w8a8-int"][0]
    assert suite["score"] == pytest.approx(0.475) and suite["bf16_score"] == pytest.approx(0.5)
    assert suite["recovery_pct"] == pytest.approx(95.0)  # mean of ratios would say 75.0
    assert suite["stderr"] == pytest.approx(math.sqrt(2 * 0.01**2) / 2)


def test_suite_uses_primary_metric_and_only_tasks_bf16_has():
    evals = [
        ev("bf16", "a", 0.5, extra={"acc_norm,none": {"score": 0.9, "stderr": None}}),
        ev("w8a8-fp", "a", 0.25, extra={"acc_norm,none": {"score": 0.9, "stderr": None}}),
        ev("w8a8-fp", "orphan", 0.99),
    ]
    rows = build_rows(evals, order=ORDER)
    suite = [r for r in rows if r["level"] == "suite" and r["scheme"] == "w8a8-fp"][0]
    assert suite["recovery_pct"] == pytest.approx(50.0)
    orphan = [r for r in rows if r["task"] == "orphan"][0]
    assert orphan["bf16_score"] is None and orphan["recovery_pct"] is None


def test_csv_and_markdown():
    rows = build_rows([ev("bf16", "a", 0.8), ev("w8a8-fp", "a", 0.8)], order=ORDER)
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0]) == FIELDS
    assert {r["scheme"] for r in parsed} == {"bf16", "w8a8-fp"}
    assert float(parsed[1]["recovery_pct"]) == pytest.approx(100.0)
    md = to_markdown(rows, order=ORDER)
    assert "| a | `acc,none` | 0.8000 ± 0.0100 | 0.8000 ± 0.0100 (100.0%) |" in md


# ------------------------------------------------------------- significance columns


def item_rows(correct, metric="acc", subtask=None):
    rows = [{"doc_id": i, "filter": "none", metric: float(c)} for i, c in enumerate(correct)]
    return [{**r, "subtask": subtask} for r in rows] if subtask else rows


def sig_rows(q_correct, b_correct, settings=None):
    score = lambda c: sum(c) / len(c)  # noqa: E731
    evals = [ev("bf16", "a", score(b_correct)), ev("w8a8-int", "a", score(q_correct))]
    samples = {("m", "bf16", "a"): item_rows(b_correct), ("m", "w8a8-int", "a"): item_rows(q_correct)}
    return build_rows(
        evals, samples=samples, significance={**defaults("significance"), **(settings or {})}, order=ORDER
    )


def test_significance_columns_for_quantized_task_and_suite_rows():
    rows = sig_rows([0] * 30 + [1] * 70, [1] * 100)
    q = [r for r in rows if r["scheme"] == "w8a8-int"]
    assert {r["level"] for r in q} == {"task", "suite"}
    for r in q:
        assert r["recovery_pct"] == pytest.approx(70.0)
        assert r["recovery_ci_low"] < r["recovery_pct"] < r["recovery_ci_high"] < 100
        assert r["drop_significant"] is True and r["gain_significant"] is False and r["n_paired"] == 100
    for r in rows:
        if r["scheme"] == "bf16":
            assert all(r.get(k) is None for k in ("recovery_ci_low", "recovery_ci_high", "drop_significant"))
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0])[-5:] == [
        "recovery_ci_low",
        "recovery_ci_high",
        "drop_significant",
        "gain_significant",
        "n_paired",
    ]
    qt = [r for r in parsed if r["scheme"] == "w8a8-int" and r["level"] == "task"][0]
    assert qt["drop_significant"] == "true" and qt["n_paired"] == "100" and float(qt["recovery_ci_high"]) < 100
    assert [r for r in parsed if r["scheme"] == "bf16"][0]["recovery_ci_low"] == ""
    md = to_markdown(rows, significance=defaults("significance"), order=ORDER)
    assert "paired bootstrap" in md and "1000 resamples, seed 0" in md and "95% confidence" in md
    assert f"(70.0% [{q[0]['recovery_ci_low']:.1f}, {q[0]['recovery_ci_high']:.1f}] **▼**)" in md


def test_same_answers_give_a_zero_width_interval_at_100():
    rows = sig_rows([1, 0] * 50, [1, 0] * 50)
    q = [r for r in rows if r["scheme"] == "w8a8-int" and r["level"] == "task"][0]
    assert q["recovery_ci_low"] == q["recovery_ci_high"] == 100.0 and q["drop_significant"] is False


def test_metric_that_is_not_a_per_item_mean_gets_no_interval():
    evals = [ev("bf16", "a", 0.5), ev("w8a8-int", "a", 0.9)]  # the items say 1.0 and 1.0
    samples = {("m", "bf16", "a"): item_rows([1] * 10), ("m", "w8a8-int", "a"): item_rows([1] * 10)}
    rows = build_rows(evals, samples=samples, significance=defaults("significance"), order=ORDER)
    q = [r for r in rows if r["scheme"] == "w8a8-int" and r["level"] == "task"][0]
    assert q["recovery_pct"] == pytest.approx(180.0) and "recovery_ci_low" not in q
    assert "not a per-item mean" in q["ci_note"]
    no_samples = build_rows(evals, samples={}, significance=defaults("significance"), order=ORDER)
    assert "no per-item samples" in [r for r in no_samples if r["scheme"] == "w8a8-int"][0]["ci_note"]


def musr_eval(scheme, correct_by_subtask):
    subtasks = {f"leaderboard_musr_{s}": {"acc_norm,none": sum(c) / len(c)} for s, c in correct_by_subtask.items()}
    pooled = [x for c in correct_by_subtask.values() for x in c]
    e = ev(scheme, "musr", sum(pooled) / len(pooled), metric="acc_norm,none", suite="leaderboard-v2")
    e["settings"] = {"lm_eval_task": "leaderboard_musr"}
    e["lm_eval"] = {"results": {"acc_norm,none": sum(pooled) / len(pooled)}, "subtasks": subtasks}
    rows = [r for s, c in correct_by_subtask.items() for r in item_rows(c, "acc_norm", f"leaderboard_musr_{s}")]
    return e, rows


def test_leaderboard_v2_normalized_metric_is_primary_and_bootstrapped():
    b_items = {
        "murder_mysteries": [1] * 70 + [0] * 30,
        "object_placements": [1] * 40 + [0] * 60,
        "team_allocation": [1] * 60 + [0] * 40,
    }
    q_items = {
        "murder_mysteries": [1] * 60 + [0] * 40,
        "object_placements": [1] * 40 + [0] * 60,
        "team_allocation": [1] * 60 + [0] * 40,
    }
    (b, b_rows), (q, q_rows) = musr_eval("bf16", b_items), musr_eval("w4a16-int", q_items)
    rows = build_rows(
        [b, q],
        normalize={"musr": "leaderboard-v2"},
        samples={("m", "bf16", "musr"): b_rows, ("m", "w4a16-int", "musr"): q_rows},
        significance={**defaults("significance"), "n_resamples": 500},
        order=ORDER,
    )
    norm = [r for r in rows if r["metric"] == "leaderboard_v2_normalized" and r["scheme"] == "w4a16-int"][0]
    # bf16: (0.4 + 0.25 + 0.4) / 3 = 0.35 (the leaderboard docs' example); scheme: (0.2 + 0.25 + 0.4) / 3.
    assert norm["bf16_score"] == pytest.approx(0.35) and norm["score"] == pytest.approx(0.85 / 3)
    assert norm["recovery_ci_low"] < norm["recovery_pct"] < norm["recovery_ci_high"]
    assert norm["n_paired"] == 300
    suite = [r for r in rows if r["level"] == "suite" and r["scheme"] == "w4a16-int"][0]
    assert suite["metric"] == "mean(musr:leaderboard_v2_normalized)"
    assert suite["recovery_pct"] == pytest.approx(norm["recovery_pct"])
    assert suite["recovery_ci_low"] == pytest.approx(norm["recovery_ci_low"])
    raw = [r for r in rows if r["metric"] == "acc_norm,none" and r["scheme"] == "w4a16-int"][0]
    assert raw["n_paired"] == 300 and raw["recovery_ci_low"] is not None  # pooled over subtasks
    assert "Open LLM Leaderboard v2" in to_markdown(rows, normalized_tasks=["musr"], order=ORDER)
    with pytest.raises(ValueError, match="unknown normalization"):
        build_rows([b], normalize={"musr": "leaderboard-v3"}, order=ORDER)
