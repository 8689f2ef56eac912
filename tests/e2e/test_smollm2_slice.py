"""A CI-sized slice of the real study (config/smollm2.yaml) on SmolLM2-135M-Instruct: every
stage runs on the real model, from the wheel's GGUF to the guideline, with real tools.

The slice (conftest.slice_config) is what `make study-smollm2` runs in full, made smaller.
Its own copy of the workflow, so it prepares the model itself (models/ in the copy).
"""

from __future__ import annotations

import csv
import json
import math

import pytest

from .conftest import SMOLLM2
from .conftest import SMOLLM2_SLICE_SCHEMES as SCHEMES

MODEL = SMOLLM2
Q = SCHEMES[1]


def rows(wf, rel):
    with open(wf.path(rel)) as f:
        return list(csv.DictReader(f))


def test_the_slice_runs_every_stage(sliced):
    assert sliced.run.ok, sliced.run.report()
    for rel in [
        "models/smollm2-135m-instruct/model.safetensors",
        f"results/models/{MODEL}/{Q}/config.json",
        "results/summary.csv",
        "results/perf.csv",
        "results/cost.csv",
        "results/guideline.md",
        "results/figures/recovery.svg",
        *[f"results/similarity/{MODEL}/{s}.json" for s in SCHEMES],
    ]:
        assert sliced.path(rel).exists(), rel


def test_real_scores_directions_and_recovery(sliced):
    sliced.need("results/summary.csv")
    s = {(r["scheme"], r["task"], r["metric"], r["level"]): r for r in rows(sliced, "results/summary.csv")}
    ppl = s[(Q, "perplexity", "word_perplexity,none", "task")]
    base = float(ppl["bf16_score"])
    assert 5 < base < 1000 and ppl["higher_is_better"] == "false"  # a real model's perplexity on prose
    # Recovery of a lower-is-better metric: bf16 / scheme, with its interval from the documents.
    assert float(ppl["recovery_pct"]) == pytest.approx(base / float(ppl["score"]) * 100, rel=1e-4)
    assert float(ppl["recovery_ci_low"]) <= float(ppl["recovery_pct"]) <= float(ppl["recovery_ci_high"])
    he = s[("bf16", "humaneval", "pass@1,create_test", "task")]
    assert he["higher_is_better"] == "true" and 0 <= float(he["score"]) <= 1 and int(he["n"]) == 10
    suites = {r["suite"]: r for (sc, _, _, lv), r in s.items() if (sc, lv) == (Q, "suite")}
    assert set(suites) == {"coding", "language-modeling"}  # perplexity in a suite of its own
    assert suites["language-modeling"]["higher_is_better"] == "false"


def test_real_generations_drift_and_perf_rows(sliced):
    sliced.need(f"results/similarity/{MODEL}/{Q}.json", "results/perf.csv")
    gens = [json.loads(x) for x in sliced.path(f"results/generations/{MODEL}/bf16.jsonl").read_text().splitlines()]
    assert len(gens) == 6 and all(len(g["text"].split()) > 3 for g in gens)  # real prose/code, not 5 tokens
    sim = json.loads(sliced.path(f"results/similarity/{MODEL}/{Q}.json").read_text())
    assert 0 < sim["text"]["rougeL"]["mean"] <= 1 and math.isfinite(sim["kl"]["mean_per_token"])
    perf = rows(sliced, "results/perf.csv")
    assert {r["scheme"] for r in perf} == set(SCHEMES) and {r["mode"] for r in perf} == {"sync", "async"}
    assert all(float(r["output_throughput"]) > 0 and r["failed"] in ("0", "0.0") for r in perf)
