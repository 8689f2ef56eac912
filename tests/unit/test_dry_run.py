"""bench/dry_run.py's count of the evaluations' engine starts, from planned job commands."""

import json
import shlex

from bench.dry_run import engine_cost, evaluate_jobs
from tests.unit.test_evaluate_plan import item


def command(model: str, plan: list[dict], backend: str = "vllm") -> str:
    argv = ["python", "-m", "quantstudy.evaluate.evaluate", "--model-dir", f"results/models/{model}/bf16"]
    argv += ["--model", model, "--scheme", "bf16", "--plan", json.dumps(plan), "--backend", backend]
    return "Shell command: " + shlex.join(argv)


def test_tasks_of_different_lengths_count_one_engine_now_and_one_per_length_before():
    plan = [item("count_letter"), item("reverse", {"max_model_len": 2048}), item("reverse", {"max_model_len": 512})]
    other = [item("count_letter"), item("reverse", {"dtype": "float16"})]  # another engine: two loads
    out = "\n".join(["rule evaluate:", command("m8", plan), command("m8", other), command("hf-model", other, "hf")])
    jobs = evaluate_jobs(out)
    assert [(j["tasks"], j["engines"], j["loads"]) for j in jobs] == [(3, 3, 1), (2, 2, 2), (2, 2, 2)]
    table = engine_cost(jobs[:2], {"m8": 8.0})  # 120 s a start at <= 10B, 1 GPU
    assert "| m8 | 1 | 5 / 2 / 2 | 5 / 5 / 3 | 0.2 / 0.2 / 0.1 |" in table
