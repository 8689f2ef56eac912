"""Text similarity to bf16 on the fixture, end to end with the real tools (vLLM generation,
rouge-score, sacrebleu, sentence-transformers, bert-score), in the shared `study` run."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest
import yaml

from quantstudy.similarity.textsim import TEXT_METRICS
from tests.workspace import ROOT, copy_workflow

from .test_study import HF_BACKEND

SCHEMES = yaml.safe_load((ROOT / "config/config.yaml").read_text())["schemes"]


def load(wf, scheme):
    return json.loads(wf.path(f"results/similarity/tiny-llama/{scheme}.json").read_text())


def test_generations_for_every_scheme(study):
    study.need(*[f"results/generations/tiny-llama/{s}.{ext}" for s in SCHEMES for ext in ("jsonl", "meta.json")])
    prompts = [json.loads(x) for x in study.path("data/prompts/fixture_prompts.jsonl").read_text().splitlines()]
    for scheme in SCHEMES:
        rows = [
            json.loads(x) for x in study.path(f"results/generations/tiny-llama/{scheme}.jsonl").read_text().splitlines()
        ]
        assert [r["id"] for r in rows] == [p["id"] for p in prompts]
        for r in rows:
            assert {"prompt", "text", "num_tokens", "finish_reason", "token_ids"} <= set(r)
            assert r["num_tokens"] == len(r["token_ids"]) and r["finish_reason"] in ("stop", "length")
        meta = json.loads(study.path(f"results/generations/tiny-llama/{scheme}.meta.json").read_text())
        assert meta["exact_kl"] and meta["logprobs_top_k"] == meta["vocab_size"] == 64
        assert meta["backend"] == ("hf" if scheme in HF_BACKEND else "vllm"), scheme
        assert meta["versions"]["vllm" if meta["backend"] == "vllm" else "transformers"]


def test_bf16_against_itself_is_exactly_identical(study):
    study.need("results/similarity/tiny-llama/bf16.json")
    s = load(study, "bf16")
    for m in TEXT_METRICS:
        assert s["text"][m]["mean"] == 1.0, m
        assert all(p[m] == 1.0 for p in s["per_prompt"]), m
    assert s["kl"]["mean_per_token"] == 0.0 and s["kl"]["top1_agreement"] == 1.0 and s["kl"]["n_tokens"] > 0
    assert s["flips"] and all(f["flips"] == 0 for f in s["flips"].values())
    assert s["flips_all_tasks"]["flip_rate"] == 0.0


def test_every_scheme_has_finite_similarity_kl_and_flips(study):
    study.need(*[f"results/similarity/tiny-llama/{s}.json" for s in SCHEMES])
    cfg = yaml.safe_load(study.path("config/config.yaml").read_text())
    for scheme in SCHEMES:
        s = load(study, scheme)
        assert s["n_prompts"] == 64
        for m in TEXT_METRICS:
            v = s["text"][m]
            assert math.isfinite(v["mean"]) and -1.0 <= v["mean"] <= 1.0 and v["n"] == 64, (scheme, m, v)
            assert v["stderr"] is not None and math.isfinite(v["stderr"])
        assert math.isfinite(s["kl"]["mean_per_token"]) and s["kl"]["mean_per_token"] >= 0.0
        assert s["kl"]["exact"]
        assert set(s["flips"]) == set(cfg["tasks"])
        for task, f in s["flips"].items():
            assert f["metric"] == cfg["tasks"][task]["metrics"][0]
            assert f["flips"] == f["correct_to_wrong"] + f["wrong_to_correct"] and f["n"] > 0
            assert 0.0 <= f["flip_rate"] <= 1.0


def test_summary_shows_similarity(study):
    study.need("results/summary.csv", "results/summary.md")
    with open(study.path("results/summary.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["level"] == "similarity"]
    assert {r["scheme"] for r in rows} == set(SCHEMES) - {"bf16"}
    for scheme in SCHEMES[1:]:
        metrics = {r["metric"]: r for r in rows if r["scheme"] == scheme}
        for m in TEXT_METRICS + ["kl_per_token"]:
            assert math.isfinite(float(metrics[m]["score"])), (scheme, m)
        assert any(m.startswith("flip_rate(") for m in metrics)
    md = study.path("results/summary.md").read_text()
    assert "drift from bf16" in md and "BERTScore F1" in md


@pytest.mark.parametrize(
    "content, words",
    [
        (None, ["prompt_sets.fixture-prompts.path", "does not exist"]),
        ("", ["prompt_sets.fixture-prompts.path", "empty"]),
        (
            '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n',
            ["prompt_sets.fixture-prompts.path", ":2:", "not valid JSON"],
        ),
    ],
)
def test_bad_prompt_file_fails_before_any_job(tmp_path, content, words):
    wf = copy_workflow(tmp_path / "wf")
    prompts = wf / "data/prompts/fixture_prompts.jsonl"
    if content is None:
        prompts.unlink()
    else:
        prompts.write_text(content)
    env = {**os.environ, "QUANTSTUDY_VENVS": os.environ.get("QUANTSTUDY_VENVS", str(ROOT / ".venv"))}
    p = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=wf,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = p.stdout + p.stderr
    assert p.returncode != 0
    for w in words + ["data/prompts/fixture_prompts.jsonl"]:
        assert w in out, (w, out[-3000:])
    assert not (wf / "results").exists(), "a job ran despite the bad prompt file"
