import math

import numpy as np
import pytest

from quantstudy.summary.leaderboard import PARTS, NormalizationError, normalized_score, parts, rescale, results_by_task


def test_rescale_clips_at_chance():
    assert rescale(0.6, 0.25) == pytest.approx(0.4667, abs=1e-4)  # the leaderboard docs' GPQA example: 46.67
    assert rescale(0.2, 0.25) == 0
    assert rescale(1.0, 0.1) == pytest.approx(1.0)
    assert list(rescale(np.array([0.05, 0.55]), 0.1)) == pytest.approx([0.0, 0.5])


def test_gpqa_is_one_pooled_score_over_a_quarter():
    res = {"leaderboard_gpqa": {"acc_norm,none": 0.6, "acc_norm_stderr,none": 0.03}}
    out = normalized_score("leaderboard_gpqa", res)
    assert out["score"] == pytest.approx(0.35 / 0.75)
    assert out["stderr"] == pytest.approx(0.04)


def test_mmlu_pro_has_ten_choices_and_clips():
    assert normalized_score("leaderboard_mmlu_pro", {"leaderboard_mmlu_pro": {"acc,none": 0.55}})[
        "score"
    ] == pytest.approx(0.5)
    assert normalized_score("leaderboard_mmlu_pro", {"leaderboard_mmlu_pro": {"acc,none": 0.05}})["score"] == 0


def test_musr_averages_normalized_subtasks():
    # The leaderboard docs' example: 0.7 / 0.4 / 0.6 over 1/2, 1/5, 1/3 -> 40, 25, 40 -> 35.
    res = {
        "leaderboard_musr_murder_mysteries": {"acc_norm,none": 0.7},
        "leaderboard_musr_object_placements": {"acc_norm,none": 0.4},
        "leaderboard_musr_team_allocation": {"acc_norm,none": 0.6},
    }
    out = normalized_score("leaderboard_musr", res)
    assert out["score"] == pytest.approx(0.35)
    assert out["stderr"] is None  # no stderrs given


def test_ifeval_is_the_mean_of_prompt_and_instance_strict_accuracy():
    # Llama-2-7b's published leaderboard IFEval, 25.19, from its raw results.
    res = {
        "leaderboard_ifeval": {
            "prompt_level_strict_acc,none": 0.18484288354898337,
            "inst_level_strict_acc,none": 0.31894484412470026,
        }
    }
    assert normalized_score("leaderboard_ifeval", res)["score"] * 100 == pytest.approx(25.19, abs=0.005)


def test_bbh_subtasks_at_chance_score_zero():
    res = {src: {m: base, f"{m.split(',')[0]}_stderr,none": 0.01} for src, m, base in parts("leaderboard_bbh")}
    assert len(res) == 24
    assert normalized_score("leaderboard_bbh", res)["score"] == pytest.approx(0.0)
    res["leaderboard_bbh_object_counting"]["acc_norm,none"] = 1.0  # one perfect subtask of 24
    out = normalized_score("leaderboard_bbh", res)
    assert out["score"] == pytest.approx(1 / 24)
    se = [0.01 / (1 - b) for _, _, b in parts("leaderboard_bbh")]
    assert out["stderr"] == pytest.approx(math.sqrt(sum(s * s for s in se)) / 24)


def test_math_has_no_baseline():
    res = {src: {"exact_match,none": 0.1 * (i + 1)} for i, (src, _, _) in enumerate(parts("leaderboard_math_hard"))}
    assert normalized_score("leaderboard_math_hard", res)["score"] == pytest.approx(0.4)


def test_errors_name_the_task_and_the_missing_part():
    with pytest.raises(NormalizationError, match="'hellaswag'"):
        normalized_score("hellaswag", {})
    with pytest.raises(NormalizationError, match="leaderboard_musr_team_allocation"):
        normalized_score(
            "leaderboard_musr",
            {
                "leaderboard_musr_murder_mysteries": {"acc_norm,none": 0.7},
                "leaderboard_musr_object_placements": {"acc_norm,none": 0.4},
            },
        )


def test_results_by_task_reads_an_eval_json():
    e = {
        "settings": {"lm_eval_task": "leaderboard_gpqa"},
        "lm_eval": {"results": {"acc_norm,none": 0.3}, "subtasks": {"leaderboard_gpqa_main": {"acc_norm,none": 0.2}}},
    }
    assert results_by_task(e) == {
        "leaderboard_gpqa": {"acc_norm,none": 0.3},
        "leaderboard_gpqa_main": {"acc_norm,none": 0.2},
    }


def test_every_v2_task_is_known():
    assert set(PARTS) == {
        "leaderboard_mmlu_pro",
        "leaderboard_gpqa",
        "leaderboard_bbh",
        "leaderboard_musr",
        "leaderboard_math_hard",
        "leaderboard_ifeval",
    }
