"""Parse lm-eval results, and read/check the per-task eval JSON this workflow writes.

lm-eval keys metrics as "<metric>,<filter>" (e.g. "acc,none", "exact_match,strict");
the standard error of "acc,none" is "acc_stderr,none".
"""

from __future__ import annotations

import math
from pathlib import Path

from quantstudy.core.results import read_result

EVAL_FORMAT = "quantstudy.eval/1"


class EvalFileError(ValueError):
    """An eval JSON that is missing, truncated or not what the workflow writes."""


def stderr_key(metric: str) -> str:
    name, _, filt = metric.partition(",")
    return f"{name}_stderr,{filt}"


def _number(x):
    """lm-eval writes 'N/A' for stderrs it could not compute; keep those as None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def extract_scores(results: dict, lm_eval_task: str, metrics: list[str]) -> dict:
    """{metric: {"score": float, "stderr": float|None}} for one task of a simple_evaluate result."""
    try:
        task_res = results["results"][lm_eval_task]
    except KeyError:
        have = sorted(results.get("results", {}))
        raise KeyError(f"lm-eval results have no task {lm_eval_task!r} (have: {have})") from None
    out = {}
    for m in metrics:
        if m not in task_res:
            have = sorted(k for k in task_res if "," in k and "_stderr" not in k)
            raise KeyError(f"task {lm_eval_task!r} has no metric {m!r} (have: {have})")
        score = _number(task_res[m])
        if score is None:
            raise ValueError(f"task {lm_eval_task!r} metric {m!r} is not a finite number: {task_res[m]!r}")
        out[m] = {
            "score": score,
            "stderr": _number(task_res.get(stderr_key(m))),
            "higher_is_better": higher_is_better(results, lm_eval_task, m),
        }
    return out


def higher_is_better(results: dict, lm_eval_task: str, metric: str) -> bool | None:
    """The metric's direction as lm-eval states it (results["higher_is_better"], from the
    task's metric config, e.g. False for word_perplexity); None where lm-eval gives none or a
    group's subtasks disagree."""
    v = results.get("higher_is_better", {}).get(lm_eval_task, {}).get(metric.partition(",")[0])
    return v if isinstance(v, bool) else None


def metric_direction(e: dict, metric: str) -> bool:
    """Whether higher is better for `metric` of an eval JSON: as recorded from lm-eval; an eval
    JSON from before directions were recorded (or with none) counts as higher-is-better."""
    v = e.get("metrics", {}).get(metric, {}).get("higher_is_better")
    return v if isinstance(v, bool) else True


def metric_aggregation(e: dict, metric: str) -> str | None:
    """The aggregation lm-eval used for `metric` (task config metric_list), e.g.
    'weighted_perplexity'; None where the eval JSON does not say (a built-in default)."""
    name = metric.partition(",")[0]
    cfg = (e.get("lm_eval") or {}).get("task_config") or {}
    for m in cfg.get("metric_list") or []:
        if isinstance(m, dict) and m.get("metric") == name and isinstance(m.get("aggregation"), str):
            return m["aggregation"]
    return None


def sample_count(results: dict, lm_eval_task: str) -> int | None:
    """Items scored. lm-eval counts leaf tasks only: a group's count is the sum over its
    leaves (the run holds this one task, so every n-samples entry is one of them)."""
    counts = results.get("n-samples", {})

    def one(n):
        return n.get("effective", n.get("original"))

    if lm_eval_task in counts:
        return one(counts[lm_eval_task])
    leaves = [one(n) for n in counts.values()]
    return sum(leaves) if leaves and None not in leaves else None


def read_eval_json(path: str | Path) -> dict:
    """Load an eval JSON, checking it is complete; errors name the file."""
    data = read_result(
        path, EVAL_FORMAT, ("model", "scheme", "task", "suite", "metrics", "n_samples"), "eval", EvalFileError
    )
    if not data["metrics"]:
        raise EvalFileError(f"{path}: eval result has no metrics")
    for m, v in data["metrics"].items():
        if not isinstance(v, dict) or _number(v.get("score")) is None:
            raise EvalFileError(f"{path}: metric {m!r} has no finite score")
    return data


def subtask_results(results: dict, lm_eval_task: str) -> dict:
    """{subtask: its lm-eval results} of a group task ({} for a plain task): the run holds
    this one task, so every other results entry is one of its subtasks (or subgroups)."""
    return {name: res for name, res in results.get("results", {}).items() if name != lm_eval_task}


def flat_samples(results: dict, lm_eval_task: str) -> list[dict]:
    """Per-item samples of one run. lm-eval keys them by leaf task, so a group's items are
    under its subtasks; those rows get a `subtask` field (doc_ids restart in each subtask)."""
    samples = results.get("samples") or {}
    if set(samples) <= {lm_eval_task}:
        return list(samples.get(lm_eval_task, []))
    return [{**row, "subtask": sub} for sub in sorted(samples) for row in samples[sub]]
