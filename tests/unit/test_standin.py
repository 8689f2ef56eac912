"""The CI stand-in hub: every dataset the paper grid reads, in its own configs and splits."""

import gzip
import json
import os
from pathlib import Path

import pytest
import yaml

from quantstudy.evaluate.taskindex import TaskIndex
from quantstudy.stage import _dataset_dirname, required_items
from tests.schema import with_defaults
from tests.standin import build_hub, humaneval_problems

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
PAPER = with_defaults(yaml.safe_load((ROOT / "config/paper.yaml").read_text()))  # as validation hands it on
_FOUND = sorted(VENVS.glob("serve/lib/python*/site-packages/lm_eval/tasks"))
needs_tasks = pytest.mark.skipif(not _FOUND, reason="needs the serve env's lm-eval task YAMLs")


def _fake_humaneval(path: Path) -> Path:
    rows = [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f"def f{i}():\n",
            "canonical_solution": "    return 1\n",
            "test": "def check(c):\n    assert c() == 1\n",
            "entry_point": f"f{i}",
        }
        for i in range(164)
    ]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    return path


def _readme_configs(repo: Path) -> dict:
    meta = yaml.safe_load(repo.joinpath("README.md").read_text().split("---")[1])
    return {c["config_name"]: {f["split"]: f["path"] for f in c["data_files"]} for c in meta["configs"]}


@needs_tasks
def test_every_dataset_config_and_split_the_paper_tasks_read(tmp_path):
    repos = build_hub(tmp_path / "hub", PAPER, [_FOUND[0]], _fake_humaneval(tmp_path / "he.jsonl.gz"))
    index = TaskIndex([_FOUND[0]])
    for item in required_items(PAPER, [_FOUND[0]], ROOT):
        if item.kind != "dataset":
            continue
        configs = _readme_configs(repos[f"datasets/{item.name}"])
        assert (item.config or "default") in configs, item.label()
    for spec in PAPER["tasks"].values():
        for leaf in index.leaf_configs(spec["lm_eval_task"]):
            splits = _readme_configs(repos[f"datasets/{leaf['dataset_path']}"])[leaf.get("dataset_name") or "default"]
            for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
                if leaf.get(key):
                    assert leaf[key] in splits, (leaf["task"], key, leaf[key])
            root = repos[f"datasets/{leaf['dataset_path']}"]
            row = json.loads((root / splits[leaf.get("test_split") or leaf["validation_split"]]).open().readline())
            if isinstance(leaf.get("doc_to_choice"), list) and leaf.get("doc_to_target") == "{{target}}":
                assert row["target"] in leaf["doc_to_choice"], leaf["task"]  # BBH: a target lm-eval can index
    # The prompt set is staged from its own hub dataset, in the fields the config names.
    arena = _readme_configs(repos["datasets/lmarena-ai/arena-hard-auto-v0.1"])["default"]["train"]
    row = json.loads((repos["datasets/lmarena-ai/arena-hard-auto-v0.1"] / arena).open().readline())
    assert row["question_id"] and row["turns"][0]["content"]


def test_humaneval_source_must_be_the_164_problems(tmp_path):
    assert len(humaneval_problems(_fake_humaneval(tmp_path / "ok.gz"))) == 164
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b'{"task_id": "x"}\n'))
    with pytest.raises(ValueError, match="not HumanEval's 164 problems"):
        humaneval_problems(bad)


def test_prepared_cache_folder_is_datasets_own_snake_case_name():
    # datasets.naming.camelcase_to_snakecase: the folder is_staged looks in.
    assert _dataset_dirname("TIGER-Lab/MMLU-Pro") == "TIGER-Lab___mmlu-pro"
    assert _dataset_dirname("TAUR-Lab/MuSR") == "TAUR-Lab___mu_sr"
    assert _dataset_dirname("DigitalLearningGmbH/MATH-lighteval") == "DigitalLearningGmbH___math-lighteval"
    assert _dataset_dirname("allenai/ai2_arc") == "allenai___ai2_arc"


def test_a_staged_camel_case_dataset_is_found(tmp_path):
    from quantstudy.stage import Item, is_staged

    item = Item("dataset", "TIGER-Lab/MMLU-Pro")
    assert not is_staged(item, tmp_path)
    (tmp_path / "hf/datasets/TIGER-Lab___mmlu-pro/default/0.0.0").mkdir(parents=True)  # where datasets writes it
    assert is_staged(item, tmp_path)
