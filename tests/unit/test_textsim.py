"""Each text metric on hand-made texts with known answers.

The policy and aggregation are plain Python and run here; the library-backed scores
(rouge-score, sacrebleu, sentence-transformers, bert-score) run once in the analysis env
(.venv/analysis, built by `python3 -m tools.setup_envs analysis`), which also recomputes
STS and BERTScore independently from the encoder's raw outputs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from quantstudy.similarity.textsim import TEXT_METRICS, by_definition, exact_match, mean_and_stderr
from tests.schema import defaults

ROOT = Path(__file__).resolve().parents[2]

# (candidate, reference, {metric: known value}); None = "strictly between 0 and 1".
CASES = {
    "identical": ("the cat sat on the mat", "the cat sat on the mat", {m: 1.0 for m in TEXT_METRICS}),
    "disjoint": ("a b c d", "e f g h", {"rouge1": 0.0, "rougeL": 0.0, "bleu": 0.0, "chrf": 0.0, "exact_match": 0.0}),
    # 2 of 4 words shared in place: P = R = 1/2.
    "half": ("a b c d", "a b e f", {"rouge1": 0.5, "rougeL": 0.5, "exact_match": 0.0}),
    # same words, reversed: every unigram matches, the longest common subsequence is 1 word.
    "reversed": ("a b c d", "d c b a", {"rouge1": 1.0, "rougeL": 0.25, "exact_match": 0.0}),
    # n-gram precisions 3/4, 2/3, 1/2 and 0/1 (exp-smoothed to 1/2): BLEU = (3/4*2/3*1/2*1/2)^(1/4).
    # chrF (whitespace dropped: "abcd" vs "abce"): char 1..4-gram P = R = 3/4, 2/3, 1/2, 0 -> mean 23/48.
    "one_word_off": (
        "a b c d",
        "a b c e",
        {"rouge1": 0.75, "rougeL": 0.75, "bleu": 0.125**0.25, "chrf": 23 / 48, "exact_match": 0.0},
    ),
    # chrF: char 1-grams P = R = 1/2, 2-grams 0 -> 1/4; no shared word.
    "chars": ("ab", "ac", {"rouge1": 0.0, "rougeL": 0.0, "bleu": 0.0, "chrf": 0.25}),
    "both_empty": ("", "", {m: 1.0 for m in TEXT_METRICS}),
    "one_empty": ("", "something", {m: 0.0 for m in TEXT_METRICS}),
    "blank_vs_text": ("   ", "x", {m: 0.0 for m in TEXT_METRICS}),
    # rouge-score sees no token in either: it would say 0; identical texts score 1 by definition.
    "same_punctuation": ("?!", "?!", {m: 1.0 for m in TEXT_METRICS}),
    "other_punctuation": ("?!", "...", {"rouge1": 0.0, "rougeL": 0.0, "bleu": 0.0, "chrf": 0.0, "exact_match": 0.0}),
    "leading_space": (" 0", "0", {m: 1.0 for m in TEXT_METRICS}),
    "close": ("the cat sat on the mat", "the cat sat on a mat", {"exact_match": 0.0}),
}

PROBE = r"""
import json, sys
from quantstudy.similarity import textsim
cases = json.loads(sys.stdin.read())
pairs = [(c, r) for c, r in cases.values()]
scores = textsim.score_pairs(pairs, json.loads(sys.argv[2]))  # the similarity block's schema defaults
out = {"scores": {name: {m: scores[m][i] for m in scores} for i, name in enumerate(cases)}}

# Independent recomputation from the encoder's raw outputs (no bert-score, no pooling module).
import torch
from transformers import AutoModel, AutoTokenizer
path = textsim.resolve_encoder(textsim.PACKAGED_MINILM)
tok, enc = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
def states(text, layer):
    b = tok(text, return_tensors="pt")
    with torch.no_grad():
        h = enc(**b, output_hidden_states=True).hidden_states[layer][0]
    return h, b["attention_mask"][0]
def bertscore(c, r, layer=6):
    hc, hr = (torch.nn.functional.normalize(states(t, layer)[0][1:-1], dim=-1) for t in (c, r))  # drop [CLS]/[SEP]
    sim = hc @ hr.T
    p, rec = sim.max(dim=1).values.mean().item(), sim.max(dim=0).values.mean().item()
    return 2 * p * rec / (p + rec)
def sts(c, r):
    def emb(t):
        h, m = states(t, -1)
        v = (h * m[:, None]).sum(0) / m.sum()
        return torch.nn.functional.normalize(v, dim=0)
    return float(emb(c) @ emb(r))
out["manual"] = {name: {"bertscore_f1": bertscore(c, r), "sts": sts(c, r)}
                 for name, (c, r) in cases.items() if textsim.by_definition(c, r) is None}
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def scored():
    venvs = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
    py = venvs / "analysis" / "bin" / "python"
    if not py.exists():
        pytest.fail(f"analysis env missing ({py}): build it with `python3 -m tools.setup_envs analysis`")
    cases = {k: [c, r] for k, (c, r, _) in CASES.items()}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    p = subprocess.run(
        [str(py), "-c", PROBE, str(ROOT), json.dumps(defaults("similarity"))],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.mark.parametrize("case", list(CASES))
def test_known_values(scored, case):
    _, _, want = CASES[case]
    got = scored["scores"][case]
    assert set(got) == set(TEXT_METRICS)
    for m in TEXT_METRICS:
        assert math.isfinite(got[m]), (m, got[m])
        if m in want:
            if want[m] in (0.0, 1.0):
                assert got[m] == want[m], (case, m, got[m])  # exactly, not approximately
            else:
                assert got[m] == pytest.approx(want[m], abs=1e-4), (case, m, got[m])


def test_partial_overlap_is_strictly_between(scored):
    for case in ("half", "one_word_off", "close"):
        for m in ("rouge1", "bleu", "chrf", "sts", "bertscore_f1"):
            assert 0.0 < scored["scores"][case][m] < 1.0, (case, m)
    s = scored["scores"]
    # more shared words, closer in every embedding metric
    for m in ("sts", "bertscore_f1"):
        assert s["disjoint"][m] < s["half"][m] < s["one_word_off"][m] < 1.0


def test_bertscore_and_sts_match_a_recomputation_from_the_encoder(scored):
    # BERTScore = greedy cosine matching of layer-6 token embeddings of all-MiniLM-L6-v2,
    # special tokens excluded, no idf, no rescaling; STS = cosine of mean-pooled embeddings.
    for case, manual in scored["manual"].items():
        for m in ("bertscore_f1", "sts"):
            assert scored["scores"][case][m] == pytest.approx(manual[m], abs=1e-4), (case, m)


def test_policy():
    assert by_definition("x", "x") == 1.0 and by_definition(" x\n", "x") == 1.0
    assert by_definition("", "") == 1.0 and by_definition("  ", "") == 1.0
    assert by_definition("", "x") == 0.0 and by_definition("x", " ") == 0.0
    assert by_definition("?!", "?!") == 1.0
    assert by_definition("x", "y") is None and by_definition("?!", "...") is None
    assert exact_match([("a", "a "), ("a", "b")]) == [1.0, 0.0]


def test_mean_and_stderr():
    assert mean_and_stderr([]) == {"mean": None, "stderr": None, "n": 0}
    assert mean_and_stderr([0.5]) == {"mean": 0.5, "stderr": None, "n": 1}
    r = mean_and_stderr([1.0, 0.0, 1.0, 0.0])
    assert r["mean"] == 0.5 and r["stderr"] == pytest.approx(math.sqrt((4 * 0.25 / 3) / 4))
    assert mean_and_stderr([1.0] * 5) == {"mean": 1.0, "stderr": 0.0, "n": 5}
