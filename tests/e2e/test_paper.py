"""The paper's grid plans on a laptop (dry run through the slurm profile) and fails fast,
naming each hub model, when really run where the hub is unreachable.

"Unreachable" is made, not assumed: HF_ENDPOINT points at a local port that refuses
connections, so the run behaves the same on a host with network."""

from __future__ import annotations

import re
import socket
import time

import pytest
import yaml

from quantstudy.workspace import copy_workflow

from .conftest import Workflow
from .test_study import planned_jobs


@pytest.fixture(scope="module")
def closed_port():
    """A local port that refuses connections: bound, never listening, held for the module."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture(scope="module")
def paper(tmp_path_factory, closed_port) -> Workflow:
    wf = Workflow(copy_workflow(tmp_path_factory.mktemp("paper")))
    wf.env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port}"
    return wf


def test_paper_grid_dry_run_through_slurm_profile(paper):
    cfg = yaml.safe_load(paper.path("config/paper.yaml").read_text())
    started = time.time()
    p = paper.snakemake("--profile", "slurm", "--configfile", "config/paper.yaml", "-n")
    elapsed = time.time() - started
    plan = planned_jobs(p)
    n_models, n_schemes, n_tasks = len(cfg["models"]), len(cfg["schemes"]), len(cfg["tasks"])
    assert plan["quantize"] == n_models * (n_schemes - 1)
    assert plan["evaluate"] == n_models * n_schemes * n_tasks
    out = p.stdout + p.stderr
    # GPU jobs ask for the model's GPUs: 8 to quantize 405B, 1 for 8B.
    q405 = re.search(r"rule quantize:\n(?:.*\n)*?.*wildcards: model=llama-3.1-405b-instruct.*\n(?:.*\n)*?.*resources: (.*)", out)
    assert q405 and "gpu=8" in q405.group(1), out[:3000]
    q8 = re.search(r"rule quantize:\n(?:.*\n)*?.*wildcards: model=llama-3.1-8b-instruct.*\n(?:.*\n)*?.*resources: (.*)", out)
    assert q8 and "gpu=1" in q8.group(1)
    # Serving benchmarks: every (model, benchmarked scheme, GPU type), each on its GPU type's nodes.
    perf_gpus = cfg["performance"]["gpu_types"]
    assert plan["perf"] == sum(len(m.get("gpu_types", perf_gpus)) * len(m.get("perf_schemes", cfg["schemes"]))
                               for m in cfg["models"].values())
    jobs = {(m["model"], m["scheme"], m["gpu"]): res for m, res in
            ((dict(re.findall(r"(\w+)=([\w.-]+)", w)), r) for w, r in
             re.findall(r"rule perf:\n(?:.*\n)*?.*wildcards: (.*)\n(?:.*\n)*?.*resources: (.*)", out))}
    assert "constraint=h100" in jobs[("llama-3.1-405b-instruct", "w4a16-int", "h100")]
    assert "gpu=8" in jobs[("llama-3.1-405b-instruct", "w4a16-int", "h100")]
    assert ("llama-3.1-405b-instruct", "bf16", "h100") not in jobs  # does not fit one node
    assert "constraint=a6000" in jobs[("llama-3.1-8b-instruct", "bf16", "a6000")]
    assert "gpu=1" in jobs[("llama-3.1-8b-instruct", "bf16", "a6000")]
    print(f"paper grid dry run: {sum(plan.values())} jobs in {elapsed:.1f} s")


def test_paper_run_without_network_fails_before_any_job_naming_models(paper, closed_port):
    p = paper.snakemake("--cores", "1", "--configfile", "config/paper.yaml", check=False, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "the model hub (127.0.0.1) is unreachable" in out and "models.llama-3.1-405b-instruct.path" in out
    assert "meta-llama/Llama-3.1-8B-Instruct" in out
    # Before any job (onstart), not after a hung download: no job ran, no log was written.
    assert not paper.path("results").exists()
