"""What the paper grid reads from a hub, and whether an offline cache holds it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from quantstudy.stage import Item, is_staged, missing_items, missing_message, required_items

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
_FOUND = sorted(VENVS.glob("serve/lib/python*/site-packages/lm_eval/tasks"))
needs_tasks = pytest.mark.skipif(not _FOUND, reason="needs the serve env's lm-eval task YAMLs")


@needs_tasks
def test_paper_grid_needs_every_model_task_dataset_and_asset():
    items = required_items(PAPER, [_FOUND[0]], ROOT)
    kinds = {}
    for i in items:
        kinds.setdefault(i.kind, []).append(i)
    assert {i.name for i in kinds["model"]} == {m["path"] for m in PAPER["models"].values()}
    ds = {(i.name, i.config) for i in kinds["dataset"]}
    assert ("hails/mmlu_no_train", "anatomy") in ds and ("openai/openai_humaneval", None) in ds
    assert ("evalplus/humanevalplus", None) in ds and ("wis-k/instruction-following-eval", None) in ds
    assert sum(1 for n, _ in ds if n == "SaylorTwift/bbh") == 24
    assert ("neuralmagic/LLM_compression_calibration", None) in ds
    assert [i.name for i in kinds["metric"]] == ["code_eval"]
    assert [i.name for i in kinds["nltk"]] == ["punkt_tab"]
    assert [i.name for i in kinds["prompts"]] == ["arena-hard"]
    # Every dataset of every task: none left out.
    for name in PAPER["tasks"]:
        assert any(f"tasks.{name}" in i.why.split(", ") for i in kinds["dataset"]), name


def _hub_model(cache: Path, hub_id: str, src: Path) -> None:
    """huggingface_hub's cache layout of one downloaded model revision."""
    repo = cache / "hf" / "hub" / f"models--{hub_id.replace('/', '--')}"
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(src, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snap.name)


def test_missing_items_are_named_with_the_command_that_stages_them(tmp_path):
    cfg = {"models": {"m": {"path": "qs/tiny-llama"}}, "tasks": {}, "offline_cache": str(tmp_path)}
    missing = missing_items(cfg, tmp_path, [], ROOT)
    assert missing == [Item("model", "qs/tiny-llama", why="models.m.path")]
    msg = missing_message(missing, tmp_path, ["config/paper.yaml"])
    assert "model qs/tiny-llama (for models.m.path)" in msg
    assert f"python -m quantstudy.stage --configfile config/paper.yaml --cache {tmp_path}" in msg
    _hub_model(tmp_path, "qs/tiny-llama", ROOT / "fixtures/tiny-llama")
    assert missing_items(cfg, tmp_path, [], ROOT) == []
    # Datasets: datasets' prepared cache, per config; nltk and code_eval where their libraries look.
    assert not is_staged(Item("dataset", "allenai/ai2_arc", "ARC-Challenge"), tmp_path)
    (tmp_path / "hf/datasets/allenai___ai2_arc/ARC-Challenge/0.0.0").mkdir(parents=True)
    assert is_staged(Item("dataset", "allenai/ai2_arc", "ARC-Challenge"), tmp_path)
    assert not is_staged(Item("dataset", "allenai/ai2_arc", "ARC-Easy"), tmp_path)
    assert not is_staged(Item("nltk", "punkt_tab"), tmp_path)
    (tmp_path / "nltk_data/tokenizers/punkt_tab").mkdir(parents=True)
    assert is_staged(Item("nltk", "punkt_tab"), tmp_path)


PROBE = r"""
import os, sys, json
from quantstudy.core.runtime import offline_env
offline_env()
from transformers import AutoConfig, AutoTokenizer
tok = AutoTokenizer.from_pretrained("qs/tiny-llama")
print(json.dumps({"vocab": len(tok), "arch": AutoConfig.from_pretrained("qs/tiny-llama").architectures,
                  "offline": os.environ["HF_HUB_OFFLINE"], "nltk": os.environ["NLTK_DATA"]}))
"""


@pytest.mark.skipif(not (VENVS / "quantize/bin/python").exists(), reason="needs the quantize env")
def test_a_job_reads_a_staged_hub_model_offline_from_the_cache(tmp_path):
    """The layout is_staged checks is the one transformers reads offline: a job given the
    cache (QS_OFFLINE_CACHE, as the workflow exports it) loads the hub id with no network."""
    _hub_model(tmp_path, "qs/tiny-llama", ROOT / "fixtures/tiny-llama")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QS_"))}
    p = subprocess.run(
        [str(VENVS / "quantize/bin/python"), "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "QS_OFFLINE_CACHE": str(tmp_path), "QS_HUB_ACCESS": "1"},
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["arch"] == ["LlamaForCausalLM"] and out["offline"] == "1"
    assert out["nltk"] == str(tmp_path / "nltk_data")


STAGE = r"""
import json, os, sys
from pathlib import Path
from tests.unit import hubstub
srv = hubstub.serve({"qs/tiny-llama": Path("fixtures/tiny-llama")})
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{srv.server_address[1]}"
os.environ["HF_HUB_DISABLE_XET"] = "1"
from quantstudy.stage import stage, missing_items
cache = sys.argv[1]
cfg = {"models": {"tiny": {"path": "qs/tiny-llama"}, "absent": {"path": "qs/not-on-the-hub"}}, "tasks": {}}
failures = stage(cfg, cache, [])
print(json.dumps({"failures": failures, "missing": [i.label() for i in missing_items(cfg, cache, [])]}))
"""


@pytest.mark.skipif(
    not (VENVS / "serve/bin/python").exists() or not (VENVS / "quantize/bin/python").exists(),
    reason="needs the serve and quantize envs",
)
def test_staging_from_a_stand_in_hub_then_an_offline_job_reads_only_the_cache(tmp_path):
    """quantstudy.stage against a local server standing in for the hub (127.0.0.1, through
    huggingface_hub's own download path), then a job with no hub at all loads the model."""
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QS_"))}
    p = subprocess.run(
        [str(VENVS / "serve/bin/python"), "-c", STAGE, str(cache)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.splitlines()[-1])
    # The item the stand-in hub lacks is named, the other staged.
    assert len(out["failures"]) == 1 and out["failures"][0].startswith("model qs/not-on-the-hub:"), out
    assert out["missing"] == ["model qs/not-on-the-hub"]
    # Offline, the stand-in gone: the job reads the staged copy.
    p = subprocess.run(
        [str(VENVS / "quantize/bin/python"), "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "QS_OFFLINE_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9"},
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.splitlines()[-1])["arch"] == ["LlamaForCausalLM"]


@needs_tasks
def test_a_dataset_two_tasks_read_is_staged_once_naming_both():
    items = [i for i in required_items(PAPER, [_FOUND[0]], ROOT) if i.kind == "dataset"]
    keys = [(i.name, i.config) for i in items]
    assert len(keys) == len(set(keys))
    [anatomy] = [i for i in items if (i.name, i.config) == ("hails/mmlu_no_train", "anatomy")]
    assert anatomy.why == "tasks.mmlu, tasks.mmlu-cot"
