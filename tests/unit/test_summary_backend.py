"""summary.csv names the lm-eval backend of every score (evaluate --backend vllm | hf)."""

import csv
import io

from quantstudy.summary.summary import FIELDS, build_rows, to_csv


def ev(scheme, task, score, backend):
    return {
        "model": "m",
        "scheme": scheme,
        "task": task,
        "suite": "s",
        "metrics": {"acc,none": {"score": score, "stderr": 0.01}},
        "n_samples": 100,
        "settings": {"lm_eval_task": task, "backend": backend},
    }


def test_backend_column_per_task_and_suite():
    rows = build_rows(
        [
            ev("bf16", "a", 0.8, "vllm"),
            ev("bf16", "b", 0.6, "vllm"),
            ev("nvfp4", "a", 0.7, "hf"),
            ev("nvfp4", "b", 0.5, "vllm"),
        ],
        order=["bf16", "nvfp4"],
    )
    by = {(r["scheme"], r["level"], r["task"]): r["backend"] for r in rows}
    assert by[("bf16", "task", "a")] == "vllm" and by[("nvfp4", "task", "a")] == "hf"
    assert by[("bf16", "suite", "s")] == "vllm"
    assert by[("nvfp4", "suite", "s")] == "hf+vllm"  # a suite mixing backends says so
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert "backend" in FIELDS and [r["backend"] for r in parsed if r["task"] == "a"] == ["vllm", "hf"]


def test_backend_empty_for_a_result_without_settings():
    rows = build_rows([{**ev("bf16", "a", 0.8, None), "settings": {"lm_eval_task": "a"}}], order=["bf16"])
    assert {r["backend"] for r in rows} == {None}
