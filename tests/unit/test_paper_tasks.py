"""The paper config's tasks against lm-eval 0.4.13's own task YAMLs (the serve env's copy)."""

import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from quantstudy.evaluate.taskindex import TaskIndex

ROOT = Path(__file__).resolve().parents[2]
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
_FOUND = sorted(
    Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv")).glob("serve/lib/python*/site-packages/lm_eval/tasks")
)
pytestmark = pytest.mark.skipif(not _FOUND, reason="needs the serve env's lm-eval task YAMLs")


@pytest.fixture(scope="module")
def index():
    return TaskIndex([_FOUND[0]])


def _evaluate_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "quantstudy/evaluate/evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_humaneval_tasks_are_confirmed_unsafe_with_code_eval_allowed(index):
    ev = _evaluate_script()
    for name in ("humaneval", "humaneval-plus"):
        got = ev.unsafe_code_settings(PAPER["tasks"][name]["lm_eval_task"], [_FOUND[0]])
        assert got == {"confirm_run_unsafe_code": True, "env": {"HF_ALLOW_CODE_EVAL": "1"}}, name
    # Tasks that run no code are not confirmed.
    assert ev.unsafe_code_settings(PAPER["tasks"]["gsm8k-cot"]["lm_eval_task"], [_FOUND[0]]) == {
        "confirm_run_unsafe_code": False,
        "env": {},
    }


def test_humaneval_and_humaneval_plus_share_one_protocol(index):
    """Comparable pass@1: same prompt style (chat template or not), greedy, one sample."""
    he, plus = PAPER["tasks"]["humaneval"], PAPER["tasks"]["humaneval-plus"]
    run = ("apply_chat_template", "fewshot_as_multiturn", "num_fewshot", "gen_kwargs", "metrics")
    assert {k: he.get(k) for k in run} == {k: plus.get(k) for k in run}
    for t in (he, plus):
        [leaf] = index.leaf_configs(t["lm_eval_task"])
        assert leaf["generation_kwargs"]["do_sample"] is False and leaf.get("repeats", 1) == 1
        assert leaf["doc_to_text"] == "{{prompt}}"  # the same completion prompt for both


def test_group_tasks_resolve_to_their_leaves_and_datasets(index):
    """Quoted keys (llama3/instruct MMLU) are indexed: a group's leaves and datasets are known."""
    assert len(index.leaf_configs("mmlu_llama")) == 57
    assert ("hails/mmlu_no_train", "anatomy") in index.datasets("mmlu_llama")
    assert len(index.datasets("leaderboard_bbh")) == 24
    for name, spec in PAPER["tasks"].items():
        assert index.datasets(spec["lm_eval_task"]), name


def test_unsafe_code_is_read_from_a_local_task_folder_too(tmp_path):
    ev = _evaluate_script()
    (tmp_path / "t.yaml").write_text("task: qs_code\nunsafe_code: true\ndataset_path: json\n")
    assert ev.unsafe_code_settings("qs_code", [_FOUND[0], tmp_path])["confirm_run_unsafe_code"] is True
    fixture = ROOT / "data/tasks/fixture"
    assert ev.unsafe_code_settings("qs_count_letter", [_FOUND[0], fixture])["confirm_run_unsafe_code"] is False
