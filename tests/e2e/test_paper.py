"""The paper's grid plans on a laptop (dry run through the slurm profile, no env
installed) and, really run without its staged offline cache, fails before any job naming
every missing item.

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


def test_paper_run_with_an_unstaged_cache_names_what_is_missing_before_any_job(paper):
    """Jobs read only the offline cache: a real run checks it first (no socket, no job),
    naming each missing model, task dataset, metric, nltk package, calibration and prompt
    set, and the command that stages them."""
    p = paper.snakemake("--cores", "1", "--configfile", "config/paper.yaml", check=False, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode != 0
    assert "the offline cache 'cache' lacks" in out, out[-3000:]
    for item in ("model meta-llama/Llama-3.1-405B-Instruct (for models.llama-3.1-405b-instruct.path)",
                 "dataset hails/mmlu_no_train [anatomy] (for tasks.mmlu, tasks.mmlu-cot)",
                 "dataset openai/openai_humaneval (for tasks.humaneval)",
                 "dataset neuralmagic/LLM_compression_calibration (for calibration_sets.",
                 "metric code_eval (for tasks humaneval, humaneval-plus)",
                 "nltk punkt_tab (for tasks ifeval)",
                 "prompts arena-hard (for similarity.prompt_set)"):
        assert item in out, item
    assert "python -m quantstudy.stage --configfile config/paper.yaml --cache cache" in out
    assert not paper.path("results/models").exists() and not paper.path("results/eval").exists()


def test_paper_grid_plans_with_no_local_env_installed(paper, tmp_path):
    """A login node plans the grid before anything is installed; a real run there stops
    before any job, naming the missing envs and the command that builds them."""
    empty = tmp_path / "no-venvs"
    empty.mkdir()
    bare = Workflow(paper.dir)
    bare.env = {**paper.env, "QUANTSTUDY_VENVS": str(empty)}
    p = bare.snakemake("--profile", "slurm", "--configfile", "config/paper.yaml", "-n")
    assert planned_jobs(p)["evaluate"] > 0
    p = bare.snakemake("--cores", "1", check=False, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "local envs missing" in out and "scripts/setup_envs.py" in out, out[-2000:]
    assert not bare.path("results/models").exists()


def _jobs(out: str, rule: str) -> dict:
    """{(wildcards...): (resources line, shell command)} of every planned job of `rule`."""
    jobs = {}
    for block in out.split("\nrule ")[1:]:
        if not block.startswith(f"{rule}:"):
            continue
        wild = dict(re.findall(r"(\w+)=([\w.-]+)", re.search(r"wildcards: (.*)", block).group(1)))
        res = re.search(r"resources: (.*)", block).group(1)
        cmd = re.search(r"Shell command: (.*)", block)
        jobs[tuple(wild.get(k) for k in ("model", "scheme", "task"))] = (res, cmd.group(1) if cmd else "")
    return jobs


def test_paper_grid_places_every_gpu_job_where_it_fits(paper):
    """Routing, memory caps and per-task engine args, as the slurm profile submits them."""
    cfg = yaml.safe_load(paper.path("config/paper.yaml").read_text())
    p = paper.snakemake("--profile", "slurm", "--configfile", "config/paper.yaml", "-n")
    out = p.stdout + p.stderr
    ev, qu = _jobs(out, "evaluate"), _jobs(out, "quantize")
    big = "llama-3.1-405b-instruct"
    assert "constraint=h200" in ev[(big, "bf16", "mmlu")][0]  # ~812 GB: no 8 x 80 GB node holds it
    for scheme in ("w8a8-fp", "w8a8-int"):  # ~406 GB: not 8 x 48 GB A6000s
        assert "constraint=a6000" not in ev[(big, scheme, "mmlu")][0]
        assert re.search(r"constraint=\w+", ev[(big, scheme, "mmlu")][0])
    for jobs in (ev, qu):
        for key, (res, _) in jobs.items():
            gpu = re.search(r"constraint=(\w+)", res).group(1)  # every GPU job names its GPU type
            mem = int(re.search(r"mem_mb=(\d+)", res).group(1))
            assert mem <= cfg["gpu_types"][gpu]["node_mem_mb"], (key, mem, gpu)
    # Per-task engine args reach the job: the model cards' max_model_len per task.
    for task, length in (("mmlu", 3850), ("mmlu-cot", 4064), ("arc-challenge", 3940), ("ifeval", 4096)):
        assert f'"max_model_len": {length}' in ev[("llama-3.1-8b-instruct", "bf16", task)][1], task
    assert '"max_model_len": 8192' in ev[("llama-3.1-8b-instruct", "bf16", "hellaswag")][1]
