import json

import pytest

from quantstudy.evaluate.lmeval import (
    EVAL_FORMAT,
    EvalFileError,
    extract_scores,
    read_eval_json,
    sample_count,
    stderr_key,
)

RESULTS = {
    "results": {
        "qs_task": {
            "alias": "qs_task",
            "acc,none": 0.75,
            "acc_stderr,none": 0.02,
            "acc_norm,none": 0.5,
            "acc_norm_stderr,none": "N/A",
            "exact_match,strict": 0.25,
            "exact_match_stderr,strict": 0.01,
        }
    },
    "n-samples": {"qs_task": {"original": 400, "effective": 200}},
}


def test_stderr_key():
    assert stderr_key("acc,none") == "acc_stderr,none"
    assert stderr_key("exact_match,strict") == "exact_match_stderr,strict"


def test_extract_scores_keeps_order_and_stderr():
    out = extract_scores(RESULTS, "qs_task", ["exact_match,strict", "acc,none", "acc_norm,none"])
    assert list(out) == ["exact_match,strict", "acc,none", "acc_norm,none"]
    assert out["acc,none"] == {"score": 0.75, "stderr": 0.02, "higher_is_better": None}  # lm-eval gave none
    assert out["acc_norm,none"]["stderr"] is None  # lm-eval's "N/A"


def test_missing_metric_lists_what_exists():
    with pytest.raises(KeyError, match="acc,none"):
        extract_scores(RESULTS, "qs_task", ["f1,none"])
    with pytest.raises(KeyError, match="no task 'other'"):
        extract_scores(RESULTS, "other", ["acc,none"])


def test_sample_count_prefers_effective():
    assert sample_count(RESULTS, "qs_task") == 200


def _valid():
    return {
        "format": EVAL_FORMAT,
        "model": "m",
        "scheme": "bf16",
        "task": "t",
        "suite": "s",
        "metrics": {"acc,none": {"score": 0.5, "stderr": 0.1}},
        "n_samples": 10,
    }


def test_read_eval_json_roundtrip(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_valid()))
    assert read_eval_json(p)["metrics"]["acc,none"]["score"] == 0.5


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(_valid())[:40],  # truncated
        "",  # empty
        json.dumps({"results": {}}),  # raw lm-eval file, not ours
        json.dumps({**_valid(), "metrics": {"acc,none": {"score": "nan"}}}),
    ],
)
def test_read_eval_json_rejects_broken_files_naming_them(tmp_path, content):
    p = tmp_path / "broken.json"
    p.write_text(content)
    with pytest.raises(EvalFileError, match="broken.json"):
        read_eval_json(p)


def test_group_samples_are_tagged_with_their_subtask_and_subtask_results_kept():
    from quantstudy.evaluate.lmeval import flat_samples, subtask_results

    plain = {"samples": {"qs_task": [{"doc_id": 0}]}, "results": {"qs_task": {"acc,none": 1.0}}}
    assert flat_samples(plain, "qs_task") == [{"doc_id": 0}]  # plain tasks: rows as lm-eval wrote them
    assert subtask_results(plain, "qs_task") == {}
    group = {
        "samples": {"g_b": [{"doc_id": 0}], "g_a": [{"doc_id": 0}, {"doc_id": 1}]},
        "results": {"g": {"acc,none": 0.5}, "g_a": {"acc,none": 0.4}, "g_b": {"acc,none": 0.6}},
    }
    assert flat_samples(group, "g") == [
        {"doc_id": 0, "subtask": "g_a"},
        {"doc_id": 1, "subtask": "g_a"},
        {"doc_id": 0, "subtask": "g_b"},
    ]
    assert subtask_results(group, "g") == {"g_a": {"acc,none": 0.4}, "g_b": {"acc,none": 0.6}}


def test_group_sample_count_sums_its_leaves():
    # lm-eval 0.4.13 keys n-samples by leaf task only (e.g. leaderboard_bbh's 24 subtasks).
    group = {
        "results": {"g": {}, "g_a": {}, "g_b": {}},
        "n-samples": {"g_a": {"original": 250, "effective": 5}, "g_b": {"original": 187, "effective": 5}},
    }
    assert sample_count(group, "g") == 10
    assert sample_count({"n-samples": {}}, "g") is None
