"""Lower-is-better metrics (perplexity): a rise is a loss everywhere.

Direction comes from lm-eval's `higher_is_better` (recorded per metric in the eval JSON),
not from a list of metric names."""

import math

import pytest

from quantstudy.evaluate.lmeval import extract_scores
from quantstudy.perf import guideline
from quantstudy.report.plots import recovery_bars_data
from quantstudy.summary.summary import build_rows, recovery_pct, to_markdown
from tests.schema import defaults

ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]  # config/config.yaml's `schemes`, as the rules pass it


PPL = "word_perplexity,none"


def lm_eval_results(ppl):
    # What simple_evaluate returns for a loglikelihood_rolling task (values as lm-eval 0.4.13 keys them).
    return {
        "results": {"qs_ppl": {"alias": "qs_ppl", PPL: ppl, "word_perplexity_stderr,none": "N/A"}},
        "higher_is_better": {"qs_ppl": {"word_perplexity": False, "byte_perplexity": False}},
    }


def ppl_eval(scheme, ppl, hib=False, task="ppl", suite="lm"):
    return {
        "model": "m",
        "scheme": scheme,
        "task": task,
        "suite": suite,
        "n_samples": 40,
        "metrics": {PPL: {"score": ppl, "stderr": None, "higher_is_better": hib}},
        "lm_eval": {
            "task_config": {"metric_list": [{"metric": "word_perplexity", "aggregation": "weighted_perplexity"}]}
        },
    }


def ppl_samples(lls, words):
    # lm-eval logs loglikelihood_rolling's word_perplexity per item as [loglikelihood, words].
    return [
        {"doc_id": i, "filter": "none", "word_perplexity": [ll, w]}
        for i, (ll, w) in enumerate(zip(lls, words, strict=True))
    ]


def weighted_ppl(lls, words):
    return math.exp(-sum(lls) / sum(words))


def test_direction_is_lm_evals_own():
    out = extract_scores(lm_eval_results(54.5), "qs_ppl", [PPL])
    assert out[PPL] == {"score": 54.5, "stderr": None, "higher_is_better": False}


def test_a_rising_perplexity_is_a_recovery_below_100():
    assert recovery_pct(113.5, 54.5, higher_is_better=False) == pytest.approx(54.5 / 113.5 * 100)
    rows = build_rows([ppl_eval("bf16", 54.5), ppl_eval("w4a16-int", 113.5)], order=ORDER)
    for level in ("task", "suite"):
        q = next(r for r in rows if r["scheme"] == "w4a16-int" and r["level"] == level)
        assert q["recovery_pct"] == pytest.approx(48.02, abs=0.01) and q["higher_is_better"] is False
    # ... and a falling one a recovery above 100
    rows = build_rows([ppl_eval("bf16", 54.5), ppl_eval("w8a8-fp", 50.0)], order=ORDER)
    assert next(r for r in rows if r["scheme"] == "w8a8-fp")["recovery_pct"] > 100
    assert "`word_perplexity,none` ↓" in to_markdown(rows, order=ORDER)


def test_the_same_name_with_higher_is_better_true_is_taken_as_lm_eval_says():
    # No list of names: a task that declares the metric higher-is-better gets score / bf16.
    rows = build_rows([ppl_eval("bf16", 54.5, hib=True), ppl_eval("w4a16-int", 113.5, hib=True)], order=ORDER)
    assert next(r for r in rows if r["scheme"] == "w4a16-int")["recovery_pct"] == pytest.approx(208.26, abs=0.01)


def test_perplexity_interval_is_a_weighted_bootstrap_and_flags_the_drop():
    words = [50 + 7 * (i % 5) for i in range(40)]
    b_ll = [-4.0 * w for w in words]
    q_ll = [-4.6 * w - (i % 3) for i, w in enumerate(words)]  # every document worse
    evals = [ppl_eval("bf16", weighted_ppl(b_ll, words)), ppl_eval("w4a16-int", weighted_ppl(q_ll, words))]
    samples = {("m", "bf16", "ppl"): ppl_samples(b_ll, words), ("m", "w4a16-int", "ppl"): ppl_samples(q_ll, words)}
    rows = build_rows(
        evals, samples=samples, significance={**defaults("significance"), "n_resamples": 300}, order=ORDER
    )
    for level in ("task", "suite"):
        q = next(r for r in rows if r["scheme"] == "w4a16-int" and r["level"] == level)
        assert "ci_note" not in q, q.get("ci_note")
        assert q["recovery_ci_low"] <= q["recovery_pct"] <= q["recovery_ci_high"] < 100
        assert q["drop_significant"] is True and q["gain_significant"] is False and q["n_paired"] == 40


def test_a_suite_mixing_directions_gets_no_row():
    def acc(s, v):
        return {
            "model": "m",
            "scheme": s,
            "task": "acc",
            "suite": "lm",
            "n_samples": 10,
            "metrics": {"acc,none": {"score": v, "stderr": None, "higher_is_better": True}},
        }

    with pytest.warns(UserWarning, match="mixes higher- and lower-is-better"):
        rows = build_rows(
            [ppl_eval("bf16", 54.5), ppl_eval("w4a16-int", 60.0), acc("bf16", 0.5), acc("w4a16-int", 0.5)], order=ORDER
        )
    assert not [r for r in rows if r["level"] == "suite"]


def test_guideline_floor_and_plots_read_the_loss():
    rows = build_rows([ppl_eval("bf16", 54.5), ppl_eval("w4a16-int", 113.5)], order=ORDER)
    csv_like = [
        {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()} for r in rows
    ]
    rec = guideline.scheme_recovery(csv_like)
    assert rec[("m", "w4a16-int")][0] == pytest.approx(48.02, abs=0.01)
    cost = [
        {"model": "m", "gpu": "cpu", "mode": "sync", "use_case": "u", "scheme": s, "queries_per_dollar": q}
        for s, q in (("bf16", 100.0), ("w4a16-int", 300.0))
    ]
    g = guideline.recommend(cost, rec, floor_pct=99.0, order=ORDER)[0]
    assert g["recommended"] == "bf16" and "w4a16-int: recovery 48.02%" in g["excluded"]
    bars = recovery_bars_data(csv_like, order=ORDER)["m"]
    assert bars["cells"][("task", "ppl", "w4a16-int")]["recovery"] == pytest.approx(48.02, abs=0.01)
    assert bars["metrics"][("task", "ppl")].endswith("↓ (bf16/score)")
