"""Schemes are data: the support matrix decides what `perf` plans and which lm-eval backend
evaluates; a new scheme needs only config (real Snakemake, real llmcompressor, lm-eval, vLLM)."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from tests.workspace import copy_workflow

from .conftest import Workflow
from .test_study import planned_jobs


def planned(out: str, rule: str) -> list[dict]:
    """Wildcards and shell command of every planned job of `rule` in a dry run's output."""
    jobs = []
    for block in out.split("\nrule ")[1:]:
        if block.startswith(f"{rule}:"):
            wild = dict(re.findall(r"(\w+)=([\w.-]+)", re.search(r"wildcards: (.*)", block).group(1)))
            cmd = re.search(r"Shell command: (.*)", block)
            jobs.append({**wild, "cmd": cmd.group(1) if cmd else ""})
    return jobs


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Workflow:
    return Workflow(copy_workflow(tmp_path_factory.mktemp("schemes") / "wf"))


def dry_run(wf: Workflow, cfg: dict) -> str:
    path = wf.path("config/edited.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    p = wf.snakemake("-n", "-p", "--configfile", str(path), timeout=600)
    return p.stdout + p.stderr


def test_the_support_matrix_drives_what_perf_plans_and_which_backend_evaluates(fresh):
    cfg = fresh.config
    out = dry_run(fresh, cfg)
    perf = {j["scheme"] for j in planned(out, "perf")}
    # This CPU's vLLM has no kernel for 8-bit weight-only INT or for NVFP4: not benchmarked,
    # evaluated and generated through lm-eval's hf backend instead.
    assert perf == set(cfg["schemes"]) - {"w8a16-int", "w4a16-nvfp4"}
    for rule in ("evaluate", "generate"):
        for job in planned(out, rule):
            want = "hf" if job["scheme"] in ("w8a16-int", "w4a16-nvfp4") else "vllm"
            assert f"--backend {want}" in job["cmd"], (rule, job)

    # The config says this CPU runs w8a16-int after all (say, a vLLM with such a kernel):
    # now it is benchmarked, and evaluated on vLLM. No code changed.
    cfg["support_matrix"] = {"formats": {"w8a16-int": {"support": {"cpu": {"emulated": "dequantized to bf16"}}}}}
    out = dry_run(fresh, cfg)
    assert {j["scheme"] for j in planned(out, "perf")} == perf | {"w8a16-int"}
    assert all("--backend vllm" in j["cmd"] for j in planned(out, "evaluate") if j["scheme"] == "w8a16-int")
    # The same config on an A100 (sm80) GPU type: Marlin serves 8-bit weight-only INT and
    # FP4 weight-only: every scheme is benchmarked.
    cfg.pop("support_matrix")
    cfg["gpu_types"]["cpu"]["arch"] = "sm80"
    out = dry_run(fresh, cfg)
    assert {j["scheme"] for j in planned(out, "perf")} == set(cfg["schemes"])


NEW = "w4a16-rtn-asym"  # a scheme no module names: round-to-nearest asymmetric INT4, from a preset


def test_a_new_scheme_needs_only_config(study, tmp_path):
    """Added to config/config.yaml alone, a scheme is quantized, evaluated, compared with
    bf16 and summarized in its place in the config's order."""
    if not study.run.ok:
        pytest.skip(f"{study.run.headline()} (reported by test_every_job_of_the_study_succeeded)")
    wf = study.copy(tmp_path / "wf")
    cfg_path = wf.path("config/config.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["schemes"].insert(1, NEW)
    cfg["recipes"][NEW] = {
        "modifiers": [{"QuantizationModifier": {"targets": ["Linear"], "ignore": ["lm_head"], "scheme": "W4A16_ASYM"}}]
    }
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert planned_jobs(wf.snakemake("-n", "results/summary.csv"))["quantize"] == 1

    wf.snakemake("--cores", "2", "results/summary.csv", timeout=1800)
    meta = json.loads(wf.path(f"results/models/tiny-llama/{NEW}/quantstudy.json").read_text())
    assert meta["recipe"] == cfg["recipes"][NEW]
    qc = json.loads(wf.path(f"results/models/tiny-llama/{NEW}/config.json").read_text())["quantization_config"]
    [group] = qc["config_groups"].values()
    assert qc["format"] == "pack-quantized" and group["weights"]["symmetric"] is False
    with open(wf.path("results/summary.csv")) as f:
        rows = list(csv.DictReader(f))
    tasks = [r for r in rows if r["scheme"] == NEW and r["level"] == "task"]
    assert len(tasks) == sum(len(t["metrics"]) for t in cfg["tasks"].values())
    assert {r["scheme"] for r in rows if r["level"] == "similarity"} >= {NEW}
    order = list(dict.fromkeys(r["scheme"] for r in rows if r["level"] == "task"))
    assert order == cfg["schemes"]  # in the config's order, the new one second
