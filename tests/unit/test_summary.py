import csv
import io
import math

import pytest

from quantstudy.summary import FIELDS, build_rows, mean_stderr, recovery_pct, to_csv, to_markdown


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
    rows = build_rows([ev("bf16", "a", 0.8), ev("w4a16-int", "a", 0.6)])
    q = [r for r in rows if r["scheme"] == "w4a16-int" and r["level"] == "task"][0]
    assert q["bf16_score"] == 0.8 and q["recovery_pct"] == pytest.approx(75.0)
    b = [r for r in rows if r["scheme"] == "bf16" and r["level"] == "task"][0]
    assert b["recovery_pct"] == pytest.approx(100.0)


def test_suite_recovery_is_ratio_of_averages_not_mean_of_ratios():
    evals = [ev("bf16", "easy", 0.9), ev("bf16", "hard", 0.1),
             ev("w8a8-int", "easy", 0.9), ev("w8a8-int", "hard", 0.05)]
    rows = build_rows(evals)
    suite = [r for r in rows if r["level"] == "suite" and r["scheme"] == "w8a8-int"][0]
    assert suite["score"] == pytest.approx(0.475) and suite["bf16_score"] == pytest.approx(0.5)
    assert suite["recovery_pct"] == pytest.approx(95.0)  # mean of ratios would say 75.0
    assert suite["stderr"] == pytest.approx(math.sqrt(2 * 0.01**2) / 2)


def test_suite_uses_primary_metric_and_only_tasks_bf16_has():
    evals = [ev("bf16", "a", 0.5, extra={"acc_norm,none": {"score": 0.9, "stderr": None}}),
             ev("w8a8-fp", "a", 0.25, extra={"acc_norm,none": {"score": 0.9, "stderr": None}}),
             ev("w8a8-fp", "orphan", 0.99)]
    rows = build_rows(evals)
    suite = [r for r in rows if r["level"] == "suite" and r["scheme"] == "w8a8-fp"][0]
    assert suite["recovery_pct"] == pytest.approx(50.0)
    orphan = [r for r in rows if r["task"] == "orphan"][0]
    assert orphan["bf16_score"] is None and orphan["recovery_pct"] is None


def test_csv_and_markdown():
    rows = build_rows([ev("bf16", "a", 0.8), ev("w8a8-fp", "a", 0.8)])
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0]) == FIELDS
    assert {r["scheme"] for r in parsed} == {"bf16", "w8a8-fp"}
    assert float(parsed[1]["recovery_pct"]) == pytest.approx(100.0)
    md = to_markdown(rows)
    assert "| a | `acc,none` | 0.8000 ± 0.0100 | 0.8000 ± 0.0100 (100.0%) |" in md
