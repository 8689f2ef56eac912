"""Open LLM Leaderboard v2 score normalization (config: `tasks.<name>.normalize: leaderboard-v2`).

As the Hugging Face leaderboard does it (huggingface.co/docs/leaderboards/open_llm_leaderboard/
normalization): each part's raw score is rescaled above its random-guess baseline,
    max(raw - baseline, 0) / (1 - baseline)
and a benchmark is the mean of its parts. Parts:
  - MMLU-Pro: the task, acc, baseline 1/10 (10 choices).
  - GPQA: the group's pooled acc_norm, baseline 1/4 (the leaderboard treats GPQA as one task).
  - BBH, MuSR: each subtask's acc_norm, baseline 1 / its number of choices.
  - MATH level 5: each subtask's exact_match, baseline 0 (generative).
  - IFEval: prompt-level and instance-level strict accuracy, baseline 0 (their mean is
    what the leaderboard shows).
The leaderboard shows 0-100; here scores stay fractions (0-1) like every other score in
the summary, so a normalized 0.4667 is the leaderboard's 46.67.
"""

from __future__ import annotations

import math

LEADERBOARD_V2 = "leaderboard-v2"
NORMALIZED_METRIC = "leaderboard_v2_normalized"

# Choices per BBH subtask: len(doc_to_choice) in lm-eval 0.4.13's tasks/leaderboard/bbh_mc.
_BBH_CHOICES = {
    "boolean_expressions": 2,
    "causal_judgement": 2,
    "date_understanding": 6,
    "disambiguation_qa": 3,
    "formal_fallacies": 2,
    "geometric_shapes": 11,
    "hyperbaton": 2,
    "logical_deduction_five_objects": 5,
    "logical_deduction_seven_objects": 7,
    "logical_deduction_three_objects": 3,
    "movie_recommendation": 6,
    "navigate": 2,
    "object_counting": 19,
    "penguins_in_a_table": 5,
    "reasoning_about_colored_objects": 18,
    "ruin_names": 6,
    "salient_translation_error_detection": 6,
    "snarks": 2,
    "sports_understanding": 2,
    "temporal_sequences": 4,
    "tracking_shuffled_objects_five_objects": 5,
    "tracking_shuffled_objects_seven_objects": 7,
    "tracking_shuffled_objects_three_objects": 3,
    "web_of_lies": 2,
}
# MuSR choices per subtask (the leaderboard's documentation).
_MUSR_CHOICES = {"murder_mysteries": 2, "object_placements": 5, "team_allocation": 3}
_MATH_SUBTASKS = [
    "algebra",
    "counting_and_prob",
    "geometry",
    "intermediate_algebra",
    "num_theory",
    "prealgebra",
    "precalculus",
]

# lm-eval task -> [(results key the part is read from, metric, random baseline)].
PARTS = {
    "leaderboard_mmlu_pro": [("leaderboard_mmlu_pro", "acc,none", 1 / 10)],
    "leaderboard_gpqa": [("leaderboard_gpqa", "acc_norm,none", 1 / 4)],
    "leaderboard_bbh": [(f"leaderboard_bbh_{s}", "acc_norm,none", 1 / n) for s, n in sorted(_BBH_CHOICES.items())],
    "leaderboard_musr": [(f"leaderboard_musr_{s}", "acc_norm,none", 1 / n) for s, n in sorted(_MUSR_CHOICES.items())],
    "leaderboard_math_hard": [(f"leaderboard_math_{s}_hard", "exact_match,none", 0.0) for s in _MATH_SUBTASKS],
    "leaderboard_ifeval": [
        ("leaderboard_ifeval", "prompt_level_strict_acc,none", 0.0),
        ("leaderboard_ifeval", "inst_level_strict_acc,none", 0.0),
    ],
}


class NormalizationError(ValueError):
    """A task or result the leaderboard normalization cannot be applied to."""


def parts(lm_eval_task: str) -> list[tuple[str, str, float]]:
    try:
        return PARTS[lm_eval_task]
    except KeyError:
        raise NormalizationError(
            f"lm-eval task {lm_eval_task!r} has no Open LLM Leaderboard v2 normalization (known: {sorted(PARTS)})"
        ) from None


def rescale(raw, baseline: float):
    """max(raw - baseline, 0) / (1 - baseline); works on floats and numpy arrays."""
    diff = raw - baseline
    clipped = diff * (diff > 0)  # 0 at or below chance, as the leaderboard clips
    return clipped / (1.0 - baseline)


def normalized_score(lm_eval_task: str, results: dict[str, dict]) -> dict:
    """{"score": 0-1, "stderr": ...} from lm-eval results keyed by task/subtask name.

    stderr: of the mean of the rescaled parts, sqrt(sum (se / (1 - b))^2) / k, ignoring the
    clip; None when a part has none."""
    scores, stderrs = [], []
    for source, metric, base in parts(lm_eval_task):
        res = results.get(source)
        if res is None or not isinstance(res.get(metric), (int, float)):
            raise NormalizationError(
                f"{lm_eval_task}: no {metric!r} for {source!r} in the lm-eval results (have: {sorted(results)})"
            )
        scores.append(rescale(float(res[metric]), base))
        name, _, filt = metric.partition(",")
        se = res.get(f"{name}_stderr,{filt}")
        stderrs.append(se / (1 - base) if isinstance(se, (int, float)) and math.isfinite(se) else None)
    k = len(scores)
    stderr = None if any(s is None for s in stderrs) else math.sqrt(sum(s * s for s in stderrs)) / k
    return {"score": sum(scores) / k, "stderr": stderr}


def results_by_task(eval_result: dict) -> dict[str, dict]:
    """The lm-eval results of an eval JSON keyed by task name: the task + its subtasks."""
    lm = eval_result.get("lm_eval") or {}
    name = eval_result.get("settings", {}).get("lm_eval_task")
    out = dict(lm.get("subtasks") or {})
    if name and lm.get("results") is not None:
        out[name] = lm["results"]
    return out
