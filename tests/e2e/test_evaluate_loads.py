"""One model load for tasks of different max_model_len, each truncated at its own; a second
load in the same process after the first is shut down. Real lm-eval and vLLM on the fixture,
each step run as the rule runs it (`python -m quantstudy.evaluate.evaluate` in the serve env),
no study needed.

Few-shot prompts (3 shots, ~80 tokens) and lengths of 40-48 tokens make lm-eval cut every
request: a task on the shared engine (started at the plan's longest, 1024) must send the
engine exactly what it sends from an engine of its own length, so its samples are equal.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.schema import with_defaults
from tests.workspace import ROOT

VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
SERVE = VENVS / "serve" / "bin" / "python"
MODEL_DIR = str(ROOT / "fixtures/tiny-llama")
LIMIT = 40
# vLLM's record of each engine it builds, with its max_model_len (max_seq_len in the line).
ENGINE_LINE = re.compile(r"engine \(v[^)]*\) with config: .*?max_seq_len=(\d+)")

pytestmark = pytest.mark.skipif(not SERVE.exists(), reason=f"{SERVE} not built (make envs)")


def item(name: str, task: str, out: Path, **engine) -> dict:
    cfg = with_defaults(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    evaluation = {k: v for k, v in cfg["evaluation"].items() if k != "gpu_types"}
    evaluation["limit"] = LIMIT
    evaluation["engine"] = {**evaluation["engine"], **engine}
    spec = copy.deepcopy(cfg["tasks"][task])
    spec["num_fewshot"] = 3
    return {
        "task": name,
        "task_spec": spec,
        "evaluation": evaluation,
        "output": str(out / f"{name}.json"),
        "samples": str(out / f"{name}.samples.jsonl"),
        "log": str(out / f"{name}.log"),
    }


def run_plan(plan: list[dict], log: Path) -> str:
    cmd = [str(SERVE), "-m", "quantstudy.evaluate.evaluate", "--model-dir", MODEL_DIR, "--model", "tiny-llama"]
    cmd += ["--scheme", "bf16", "--plan", json.dumps(plan)]
    with log.open("w") as f:
        p = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=900)
    text = log.read_text(errors="replace")
    assert p.returncode == 0, "\n".join(text.splitlines()[-40:])
    return text


def answers(i: dict) -> dict:
    """What each item was asked and answered, and the task's scores."""
    rows = [json.loads(x) for x in Path(i["samples"]).read_text().splitlines()]
    per_item = {(r["doc_id"], r["filter"]): (r["arguments"], r["resps"], r["filtered_resps"]) for r in rows}
    return {"items": per_item, "metrics": json.loads(Path(i["output"]).read_text())["metrics"]}


def test_tasks_of_different_lengths_share_one_engine_and_truncate_as_alone(tmp_path):
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    plan = [
        item("count_letter", "count_letter", shared, max_model_len=48),
        item("reverse", "reverse", shared, max_model_len=40),
        item("count_letter_long", "count_letter", shared, max_model_len=1024),
        # Another engine setting: a second model load in this process, after the first is shut down.
        item("reverse_seqs", "reverse", shared, max_model_len=40, max_num_seqs=4),
    ]
    log = run_plan(plan, tmp_path / "shared.log")
    assert ENGINE_LINE.findall(log) == ["1024", "40"], log[-3000:]

    for i in plan[:2]:  # each on an engine of its own length, as before the shared engine
        own = {**i, **{k: str(alone / Path(i[k]).name) for k in ("output", "samples", "log")}}
        own_log = run_plan([own], tmp_path / f"alone-{i['task']}.log")
        assert ENGINE_LINE.findall(own_log) == [str(i["evaluation"]["engine"]["max_model_len"])]
        assert answers(i) == answers(own), i["task"]
        ev = json.loads(Path(i["output"]).read_text())
        assert ev["settings"]["engine"]["max_model_len"] == i["evaluation"]["engine"]["max_model_len"]
        assert ev["lm_eval"]["config"]["model_args"]["max_model_len"] == 1024  # the engine that answered
    # The requests were cut: lm-eval said so, and on the long engine the same task's answers differ.
    assert "exceeds max length (47). Truncating context." in log
    assert "Truncating context from side='left'" in log
    resps = lambda i: {k: v[1:] for k, v in answers(i)["items"].items()}  # noqa: E731
    assert resps(plan[0]) != resps(plan[2])
    # The second load answered too.
    assert json.loads(Path(plan[3]["output"]).read_text())["n_samples"] == LIMIT
