"""A CI-sized slice of the real study (config/smollm2.yaml) on SmolLM2-135M-Instruct: every
stage runs on the real model, from the wheel's GGUF to the guideline, with real tools.

Sliced: bf16 and w8a8-fp (the paper's FP8 recipe: no calibration; GPTQ's per-column loop
over 30 layers alone takes 5-10 min on 2 cores, whatever the calibration size), 10 HumanEval
problems and 10 perplexity documents, 6 similarity prompts of 64 tokens, one serving use
case, one repeat, no sweep.
What `make study-smollm2` runs in full. Its own copy of the workflow, so it prepares the
model itself (models/ in the copy).
"""

from __future__ import annotations

import csv
import json
import math
import time

import pytest
import yaml

from quantstudy.workspace import copy_workflow

from .conftest import Workflow, run_study

MODEL = "smollm2-135m-instruct"
SCHEMES = ["bf16", "w8a8-fp"]
Q = SCHEMES[1]
SLICE_BUDGET_S = 600  # the bound for the slice on 2 cores


def slice_config(cfg: dict) -> dict:
    cfg["schemes"] = SCHEMES
    cfg["recipes"] = {Q: cfg["recipes"][Q]}
    cfg["models"][MODEL].pop("recipe_overrides")
    cfg["evaluation"]["limit"] = 10
    cfg["prompt_sets"]["humaneval-instructions"]["path"] = "data/prompts/slice.jsonl"
    cfg["similarity"]["max_tokens"] = 64
    cfg["performance"].update(
        use_cases={"instruction-following": {"prompt_tokens": 64, "output_tokens": 16, "requests": 8,
                                             "sync_requests": 2}},
        repeats=1, warmup_requests=1, async_rate_fractions=[])
    return cfg


@pytest.fixture(scope="module")
def sliced(tmp_path_factory):
    wf = Workflow(copy_workflow(tmp_path_factory.mktemp("smollm2")))
    cfg = slice_config(yaml.safe_load(wf.path("config/smollm2.yaml").read_text()))
    lines = wf.path("data/prompts/humaneval_instructions_every5.jsonl").read_text().splitlines()
    wf.path("data/prompts/slice.jsonl").write_text("\n".join(lines[:6]) + "\n")
    wf.path("config/slice.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    stage = [str(wf.env["QUANTSTUDY_VENVS"]) + "/serve/bin/python", "-m", "quantstudy.stage",
             "--configfile", "config/slice.yaml"]
    import subprocess

    started = time.monotonic()
    subprocess.run(stage, cwd=wf.dir, env=wf.env, check=True, capture_output=True, timeout=300)
    wf.run = run_study(wf, "--configfile", "config/slice.yaml", timeout=2 * SLICE_BUDGET_S)
    wf.seconds = time.monotonic() - started
    return wf


def rows(wf, rel):
    with open(wf.path(rel)) as f:
        return list(csv.DictReader(f))


def test_the_slice_runs_every_stage_within_budget(sliced):
    assert sliced.run.ok, sliced.run.report()
    for rel in ["models/smollm2-135m-instruct/model.safetensors",
                f"results/models/{MODEL}/{Q}/config.json",
                "results/summary.csv", "results/perf.csv", "results/cost.csv", "results/guideline.md",
                "results/figures/recovery.svg", *[f"results/similarity/{MODEL}/{s}.json" for s in SCHEMES]]:
        assert sliced.path(rel).exists(), rel
    assert sliced.seconds < SLICE_BUDGET_S, f"slice took {sliced.seconds:.0f} s"


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
