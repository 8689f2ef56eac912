"""One engine at the longest max_model_len, each task at its own: lm-eval's real truncation
code (the serve env's lm-eval 0.4.13) cuts every request of a task exactly as it does on an
engine built at that task's length (quantstudy/evaluate/evaluate.py, set_max_length)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVE = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv")) / "serve/bin/python"

# lm-eval's vLLM model without its engine: what VLLM.__init__ derives from max_model_len
# (its max_length, the engine args, the engine's own config) and nothing else; requests are
# recorded where they would reach the engine. A model built at the task's length against
# one built at the engine's and set to the task's: lm-eval must read only the length set.
PROBE = r"""
import json, sys
from types import SimpleNamespace

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.vllm_causallms import VLLM

from quantstudy.evaluate.evaluate import set_max_length

ENGINE = 8192
TASK_LENGTHS = [3850, 3940, 4064, 4096, 8192]


def model(built_at):
    lm = VLLM.__new__(VLLM)
    super(VLLM, lm).__init__()  # lm-eval's LM base: rank, cache hook
    lm._max_length = built_at
    lm.model_args = {"max_model_len": built_at}
    lm.model = SimpleNamespace(llm_engine=SimpleNamespace(model_config=SimpleNamespace(max_model_len=built_at)))
    lm.data_parallel_size, lm.batch_size, lm.truncation_side = 1, "auto", "left"
    lm.think_end_token, lm._max_gen_toks = None, 256
    lm.tokenizer = SimpleNamespace(eos_token_id=0, eos_token="</s>", decode=lambda i: "</s>")
    lm.tok_encode = lambda texts: [[int(w) for w in t.split()] for t in texts]
    lm.sent = {"loglikelihood": [], "ctxlen": [], "generate": [], "max_tokens": []}

    def generate(requests, generate=False, sampling_params=None):
        lm.sent["generate" if generate else "loglikelihood"] += [list(r) for r in requests]
        if generate:
            lm.sent["max_tokens"] += [p.max_tokens for p in sampling_params]
        return [SimpleNamespace(outputs=[SimpleNamespace(text="out")]) for _ in requests]

    def parse(tokens, outputs, ctxlen):
        lm.sent["ctxlen"].append(ctxlen)
        return (0.0, True)

    lm._model_generate, lm._parse_logprobs = generate, parse
    return lm


def run(lm):
    ctx = lambda n: " ".join(str(1 + i % 50) for i in range(n))  # noqa: E731
    lm._loglikelihood_tokens([(None, list(range(1, n + 1)), [7, 8, 9]) for n in (100, 3000, 3900, 5000, 9000)])
    reqs = [
        Instance("generate_until", {}, (ctx(n), {"until": ["\n\n"], "max_gen_toks": g}), 0)
        for n in (100, 2900, 3500, 4500, 9000)
        for g in (256, 1024)
    ]
    lm.generate_until(reqs, disable_tqdm=True)
    return lm.sent


out = {}
for length in TASK_LENGTHS:
    shared = model(ENGINE)
    set_max_length(shared, length)
    out[length] = {"alone": run(model(length)), "shared": run(shared), "max_length": shared.max_length}
hf = HFLM.__new__(HFLM)
hf._max_length = ENGINE
set_max_length(hf, 3850)
out["hf"] = hf.max_length
print(json.dumps(out))
"""


@pytest.mark.skipif(not SERVE.exists(), reason="needs the serve env (lm-eval)")
def test_a_task_on_the_longer_shared_engine_sends_what_it_sent_on_its_own(tmp_path):
    p = subprocess.run(
        [str(SERVE), "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.splitlines()[-1])
    for length in ("3850", "3940", "4064", "4096", "8192"):
        alone, shared, n = out[length]["alone"], out[length]["shared"], int(length)
        assert shared == alone, length  # the same tokens, context lengths and max_tokens
        assert out[length]["max_length"] == n
        # The probe's requests are long enough to be cut, and were, to fit the task's length.
        assert max(map(len, alone["loglikelihood"])) == n - 1, length
        gen = [len(r) + m for r, m in zip(alone["generate"], alone["max_tokens"], strict=True)]
        assert max(gen) == n and len(alone["generate"]) == 10, length
    assert out["3850"]["alone"] != out["8192"]["alone"]
    assert out["hf"] == 3850  # lm-eval's hf model reads its max_length the same way
