"""Calibration text reaches GPTQ with one BOS: the quantize env's real tokenizer on the fixture."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv")) / "quantize/bin/python"

PROBE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("q", "quantstudy/quantize/quantize.py")
q = importlib.util.module_from_spec(spec); spec.loader.exec_module(q)
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained("fixtures/tiny-llama")
texts = q.load_calibration_texts("data/calibration/fixture_chat.jsonl", tok, 4, 0, True)
chat = q.calibration_features(texts, tok, 128, True)["input_ids"]
plain = q.calibration_features(["a b c"], tok, 128, False)["input_ids"]
print(json.dumps({"bos": tok.bos_token_id, "chat": chat, "plain": plain,
                  "templated": all(t.startswith(tok.bos_token) for t in texts)}))
"""


@pytest.mark.skipif(not PY.exists(), reason="needs the quantize env")
def test_chat_templated_calibration_has_one_bos():
    out = json.loads(
        subprocess.run(
            [str(PY), "-c", PROBE],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        ).stdout.splitlines()[-1]
    )
    bos = out["bos"]
    assert out["templated"]  # the fixture's chat template writes the BOS itself
    for ids in out["chat"]:
        assert ids[0] == bos and ids.count(bos) == 1, ids[:4]
    assert out["plain"][0][0] == bos and out["plain"][0].count(bos) == 1  # plain text: the tokenizer's BOS
