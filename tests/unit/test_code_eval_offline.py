"""HF evaluate's code_eval, staged from the vendored copy, loads with no network.

lm-eval's humaneval utils.py runs `evaluate.load("code_eval")` at import; offline, without
the staged module, lm-eval reports only "has no function 'pass_at_k'"."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from quantstudy.stage import Item, is_staged, stage_metric

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
SERVE = VENVS / "serve/bin/python"

PROBE = r"""
import json, os, sys
import evaluate
from evaluate.loading import files_to_hash
code_eval = evaluate.load("code_eval")
refs = ["assert add(2, 3) == 5", "assert add(2, 3) == 5"]
preds = [["def add(a, b):\n    return a + b"], ["def add(a, b):\n    return a * b"]]
per_problem = [code_eval.compute(references=[r], predictions=[p], k=[1])[0]["pass@1"] for r, p in zip(refs, preds)]
both = code_eval.compute(references=refs, predictions=preds, k=[1])[0]["pass@1"]
src = sys.modules[type(code_eval).__module__].__file__
here = os.path.dirname(src)
print(json.dumps({"per_problem": per_problem, "both": both, "file": src,
                  "hash": files_to_hash([src, os.path.join(here, "execute.py")])}))
"""


def test_stage_metric_lays_out_evaluates_module_cache(tmp_path):
    assert not is_staged(Item("metric", "code_eval"), tmp_path)
    script = stage_metric("code_eval", tmp_path)
    assert is_staged(Item("metric", "code_eval"), tmp_path)
    mod = tmp_path / "hf/modules/evaluate_modules/metrics/evaluate-metric--code_eval"
    assert script.parent.parent == mod and len(script.parent.name) == 64
    assert {p.name for p in script.parent.iterdir()} == {"__init__.py", "code_eval.py", "execute.py", "code_eval.json"}
    assert stage_metric("code_eval", tmp_path) == script  # a rerun keeps it
    assert [p.name for p in mod.iterdir() if not p.name.startswith("__")] == [script.parent.name]


def test_unknown_metric_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="'bleurt'"):
        stage_metric("bleurt", tmp_path)


@pytest.mark.skipif(not SERVE.exists(), reason="needs the serve env (evaluate)")
def test_offline_evaluate_load_code_eval_computes_pass_at_1(tmp_path):
    stage_metric("code_eval", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QS_"))}
    env.update(
        {
            "HF_MODULES_CACHE": str(tmp_path / "hf/modules"),
            "HF_HOME": str(tmp_path / "hf"),
            "HF_EVALUATE_OFFLINE": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens: any download attempt fails
            "HF_ALLOW_CODE_EVAL": "1",
        }
    )
    p = subprocess.run([str(SERVE), "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["per_problem"] == [1.0, 0.0] and out["both"] == 0.5
    assert out["file"].startswith(str(tmp_path))  # the staged copy ran, not some other cache
    # The hash directory is the one evaluate itself computes for these files.
    assert Path(out["file"]).parent.name == out["hash"]


LMEVAL = r"""
import json, os, runpy, sys
# As the evaluate rule starts `python -m quantstudy.evaluate.evaluate`: the working directory
# first on sys.path, then the module's top-level code. Neither may shadow HF `evaluate`, which
# lm-eval's humaneval utils import (quantstudy's stage is quantstudy.evaluate, never `evaluate`).
sys.path.insert(0, sys.argv[1])
runpy.run_module("quantstudy.evaluate.evaluate", run_name="job")
from quantstudy.core.runtime import offline_env
offline_env({"HF_ALLOW_CODE_EVAL": "1"})  # as a job runs: the cache's env, hub variables offline
from lm_eval.tasks.humaneval import utils  # evaluate.load("code_eval") runs here
ok = utils.pass_at_k(["assert add(2, 3) == 5"], [["def add(a, b):\n    return a + b"]], k=[1])
print(json.dumps({"pass@1": ok, "offline": os.environ["HF_EVALUATE_OFFLINE"]}))
"""


@pytest.mark.skipif(not SERVE.exists(), reason="needs the serve env (lm-eval)")
def test_lm_evals_humaneval_metric_loads_in_an_offline_job(tmp_path):
    """The job's view: `python -m quantstudy.evaluate.evaluate`'s sys.path, QS_OFFLINE_CACHE (what the workflow
    exports for `offline_cache`) and nothing else; lm-eval's humaneval utils import and score."""
    stage_metric("code_eval", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QS_"))}
    env.update({"QS_OFFLINE_CACHE": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9"})
    p = subprocess.run(
        [str(SERVE), "-c", LMEVAL, str(ROOT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.splitlines()[-1]) == {"pass@1": {"pass@1": 1.0}, "offline": "1"}
