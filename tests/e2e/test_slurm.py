"""`snakemake --profile slurm` against a real one-node SLURM (fake GPUs), as a user types it.

CI installs slurm-wlm and munge (tests/cluster/slurm-up.sh); elsewhere the real-SLURM
test is skipped when the daemons are not installed. The daemons are stopped at the end,
pass or fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.workspace import ROOT, copy_workflow

from .conftest import Workflow

HAVE_SLURM = shutil.which("slurmctld") is not None and shutil.which("sbatch") is not None
IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def slurm():
    if not IS_ROOT:
        pytest.skip("bringing up SLURM needs root")
    if not HAVE_SLURM and not os.environ.get("CI"):
        pytest.skip("slurm-wlm is not installed (CI installs it)")
    subprocess.run(["bash", str(ROOT / "tests/cluster/slurm-up.sh")], check=True, timeout=600)
    try:
        yield
    finally:
        subprocess.run(["bash", str(ROOT / "tests/cluster/slurm-down.sh")], timeout=120)


def test_profile_resolves_from_the_repository_root():
    # Snakemake looks `--profile slurm` up as ./slurm first.
    assert (ROOT / "slurm" / "config.yaml").is_file()
    prof = yaml.safe_load((ROOT / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["slurm-status-command"] == "squeue"


def test_gpu_rule_goes_through_sbatch_and_matches_a_local_run(slurm, study, tmp_path):
    study.need("results/models/tiny-llama/w8a8-fp")
    wf = Workflow(copy_workflow(tmp_path / "wf"))
    cfg = yaml.safe_load(wf.path("config/config.yaml").read_text())
    cfg["models"]["tiny-llama"]["gpus"] = 1  # as a real model would: ask SLURM for a GPU
    wf.path("config/slurm-test.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = "results/models/tiny-llama/w8a8-fp"
    p = wf.snakemake("--profile", "slurm", target, "--configfile", "config/slurm-test.yaml", timeout=1200)
    out = p.stdout + p.stderr

    # SLURM's side: the job was submitted and its record asks for one GPU.
    ids = re.findall(r"SLURM jobid (\d+)", out) or re.findall(r"jobid[ =:]+(\d+)", out, re.I)
    assert ids, out[-3000:]
    record = subprocess.run(["scontrol", "show", "job", ids[0]], capture_output=True, text=True).stdout
    assert "gres:gpu:1" in record or "gres/gpu=1" in record, record
    assert "JobState=COMPLETED" in record, record

    # Snakemake's side: the same checkpoint a local run makes.
    for name in ("config.json", "model.safetensors", "recipe.yaml"):
        assert wf.path(f"{target}/{name}").read_bytes() == study.path(f"{target}/{name}").read_bytes(), name


def test_one_sbatch_job_evaluates_every_task_of_a_scheme(slurm, study, tmp_path):
    """The evaluate job holds its GPU for all of its (model, scheme)'s tasks: one SLURM job
    asking for one GPU writes every task's results, equal to the local study's."""
    tasks = list(study.config["tasks"])
    study.need(*[f"results/eval/tiny-llama/bf16/{t}.json" for t in tasks])
    wf = Workflow(copy_workflow(tmp_path / "wf"))
    cfg = yaml.safe_load(wf.path("config/config.yaml").read_text())
    cfg["models"]["tiny-llama"]["gpus"] = 1
    wf.path("config/slurm-test.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    targets = [f"results/eval/tiny-llama/bf16/{t}.json" for t in tasks]
    p = wf.snakemake("--profile", "slurm", *targets, "--configfile", "config/slurm-test.yaml", timeout=1200)
    out = p.stdout + p.stderr

    ids = set(re.findall(r"SLURM jobid (\d+)", out) or re.findall(r"jobid[ =:]+(\d+)", out, re.I))
    assert len(ids) == 1, (ids, out[-3000:])  # one job (one engine) for every task
    record = subprocess.run(["scontrol", "show", "job", ids.pop()], capture_output=True, text=True).stdout
    assert "gres:gpu:1" in record or "gres/gpu=1" in record, record
    assert "JobState=COMPLETED" in record, record
    for t in targets:
        ours, ref = (json.loads(w.path(t).read_text()) for w in (wf, study))
        assert (ours["metrics"], ours["n_samples"]) == (ref["metrics"], ref["n_samples"]), t
