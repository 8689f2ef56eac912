from pathlib import Path

import pytest

from quantstudy.summary import bootstrap
from quantstudy.summary.bootstrap import (
    Component,
    NotPerItemError,
    Statistic,
    item_values,
    metric_statistic,
    paired_bootstrap,
    suite_statistic,
)
from tests.schema import defaults

SCHEMA = Path(__file__).resolve().parents[2] / "config/schema/config.schema.yaml"


def samples(correct, metric="acc", filt="none", start=0):
    """lm-eval-like per-item rows: one per doc, the metric's value under its bare name."""
    return [{"doc_id": start + i, "filter": filt, "metrics": [metric], metric: float(c)} for i, c in enumerate(correct)]


def vals(correct, **kw):
    return item_values(samples(correct, **kw), kw.get("metric", "acc") + "," + kw.get("filt", "none"))


SIG = defaults("significance")


def run(q, b, **kw):
    return paired_bootstrap(metric_statistic("t", vals(q), vals(b), "acc,none"), **{**SIG, **kw})


def test_item_values_picks_the_filter_and_pools_lists():
    rows = samples([1, 0], metric="exact_match", filt="strict") + samples([1, 1], metric="exact_match", filt="flexible")
    assert item_values(rows, "exact_match,strict") == {(None, 0): (1.0, 1.0), (None, 1): (0.0, 1.0)}
    inst = [{"doc_id": 0, "filter": "none", "inst_level_strict_acc": [True, False, True]}]
    assert item_values(inst, "inst_level_strict_acc,none") == {(None, 0): (2.0, 3.0)}
    with pytest.raises(NotPerItemError, match="'f1'"):
        item_values(samples([1]), "f1,none")
    with pytest.raises(ValueError, match="appears twice"):
        item_values(samples([1]) + samples([0]), "acc,none")


def test_identical_models_give_exactly_100_with_zero_width():
    items = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 10
    res = run(items, items)
    assert res["recovery_ci_low"] == res["recovery_ci_high"] == 100.0
    assert res["drop_significant"] is False and res["gain_significant"] is False
    assert res["n_paired"] == 100 and res["n_dropped"] == 0


def test_fully_flipped_model_is_a_significant_drop():
    b = [1] * 80 + [0] * 20
    q = [0] * 80 + [1] * 20  # every answer flipped: 0.2 vs 0.8
    res = run(q, b)
    assert res["recovery_ci_high"] < 100 and res["drop_significant"] is True
    assert res["gain_significant"] is False
    assert 10 < res["recovery_ci_low"] < 25 < res["recovery_ci_high"] < 45


def test_known_small_case_bounds_and_width():
    # 20 items, bf16 right on all; the scheme wrong on 2: recovery = right share x 100.
    # Resampled recovery = (1 - wrong share) x 100, wrong share ~ Binomial(20, 0.1) / 20:
    # P(0 wrong) = 0.12 > 2.5% and P(>= 5 wrong) = 4.3% > 2.5% > P(>= 6) = 1.1%, so the
    # 2.5/97.5% percentiles are 0 and 5 wrong: the interval is [75, 100].
    res = run([1] * 18 + [0] * 2, [1] * 20, n_resamples=4000)
    assert res["recovery_ci_low"] == pytest.approx(75.0)
    assert res["recovery_ci_high"] == pytest.approx(100.0)
    assert res["drop_significant"] is False  # 100 is inside


def test_deterministic_given_seed_and_close_across_seeds():
    b = ([1] * 7 + [0] * 3) * 30
    q = ([1] * 6 + [0] * 4) * 30
    a1, a2 = run(q, b, seed=7), run(q, b, seed=7)
    assert a1 == a2
    other = run(q, b, seed=8)
    assert (other["recovery_ci_low"], other["recovery_ci_high"]) != (a1["recovery_ci_low"], a1["recovery_ci_high"])
    assert other["recovery_ci_low"] == pytest.approx(a1["recovery_ci_low"], abs=2.0)
    assert other["recovery_ci_high"] == pytest.approx(a1["recovery_ci_high"], abs=2.0)


def test_confidence_widens_the_interval():
    b = ([1] * 7 + [0] * 3) * 30
    q = ([1] * 6 + [0] * 4) * 30
    narrow, wide = run(q, b, confidence=0.8), run(q, b, confidence=0.99)
    assert wide["recovery_ci_low"] < narrow["recovery_ci_low"] < narrow["recovery_ci_high"] < wide["recovery_ci_high"]


def test_missing_items_on_one_side_are_dropped_and_counted():
    b = vals([1, 1, 0, 1])
    q = vals([1, 1, 0, 1, 1, 1])  # docs 4 and 5 only in the scheme
    del b[(None, 0)]  # doc 0 only in the scheme too
    res = paired_bootstrap(metric_statistic("t", q, b, "acc,none"), **SIG)
    assert res["n_paired"] == 3 and res["n_dropped"] == 3
    assert res["recovery_ci_low"] == res["recovery_ci_high"] == 100.0  # same answers on docs 1-3


def test_no_common_items_and_zero_baseline_are_undefined():
    none = paired_bootstrap(
        metric_statistic("t", vals([1, 1]), item_values(samples([1], start=5), "acc,none"), "m"), **SIG
    )
    assert none["n_paired"] == 0 and none["recovery_ci_low"] is None and none["drop_significant"] is None
    zero = run([1, 0, 1], [0, 0, 0])
    assert zero["n_paired"] == 3 and zero["recovery_ci_low"] is None and zero["gain_significant"] is None


def test_suite_is_stratified_ratio_of_task_averages():
    easy = metric_statistic("easy", vals([1] * 50), vals([1] * 50), "acc,none")
    hard = metric_statistic("hard", vals([1] * 5 + [0] * 45), vals([1] * 10 + [0] * 40), "acc,none")
    suite = suite_statistic({"easy": easy, "hard": hard})
    # Point: (1 + 0.1) / 2 over (1 + 0.2) / 2 = 91.67% (the mean of ratios would be 75%).
    means = {n: bootstrap.mean_of(c.quantized) for n, c in suite.components.items()}
    base = {n: bootstrap.mean_of(c.baseline) for n, c in suite.components.items()}
    assert suite.fn(means) / suite.fn(base) * 100 == pytest.approx(91.6667, abs=1e-3)
    res = paired_bootstrap(suite, **SIG)
    assert res["n_paired"] == 100
    assert res["recovery_ci_low"] < 91.67 < res["recovery_ci_high"] < 100  # 5 lost items out of 100
    assert res["drop_significant"] is True
    # Stratified: every resample keeps 50 items per task, so the easy task (all right on
    # both sides) always contributes exactly 1 and the ratio never exceeds 100.


def test_components_in_one_stratum_share_the_draw():
    # Two metrics of the same items, bf16 and the scheme identical on both: any shared
    # draw gives exactly 100; independent draws of the two would not always.
    a = vals([1, 0, 1, 1, 0, 0, 1, 0] * 5)
    b = vals([0, 1, 1, 0, 1, 0, 0, 1] * 5)
    stat = Statistic({"a": Component(("t",), a, a), "b": Component(("t",), b, b)}, lambda m: m["a"] + 2 * m["b"])
    res = paired_bootstrap(stat, **SIG)
    assert res["recovery_ci_low"] == res["recovery_ci_high"] == 100.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="confidence"):
        run([1], [1], confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        run([1], [1], n_resamples=0)


def test_the_schema_is_the_one_source_of_the_bootstrap_settings():
    # paired_bootstrap has no defaults of its own: a caller passes the config's block.
    with pytest.raises(TypeError, match="n_resamples"):
        paired_bootstrap(metric_statistic("t", vals([1]), vals([1]), "acc,none"))
    assert SIG == {"seed": 0, "n_resamples": 1000, "confidence": 0.95}


def test_samples_path_for():
    assert bootstrap.samples_path_for("results/eval/m/bf16/t.json") == Path("results/eval/m/bf16/t.samples.jsonl")


def test_read_samples_keeps_ids_and_metric_values_only(tmp_path):
    p = tmp_path / "t.samples.jsonl"
    p.write_text(
        '{"doc_id": 3, "doc": {"q": "long"}, "arguments": [["prompt", {}]], "resps": [["x"]], '
        '"filter": "strict", "metrics": ["exact_match"], "exact_match": 1.0, "inst": [true, false], '
        '"subtask": "g_a"}\n\n{"doc_id": 4, "filter"'
    )
    with pytest.raises(ValueError, match=r"t.samples.jsonl:3: not valid JSON"):
        bootstrap.read_samples(p)
    p.write_text(p.read_text().rsplit("\n", 1)[0] + "\n")
    assert bootstrap.read_samples(p) == [
        {"doc_id": 3, "filter": "strict", "exact_match": 1.0, "inst": [True, False], "subtask": "g_a"}
    ]
