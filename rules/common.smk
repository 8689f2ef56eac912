# Helpers, config validation and path patterns shared by every rule.

import json
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from quantstudy.core import paths
from quantstudy.core.config import (
    BASELINE,
    ConfigError,
    apply_gguf_paths,
    effective_recipe,
    model_gpu_types,
    model_perf_schemes,
    output_errors,
    validate_config,
)
from quantstudy.core.configload import coerce_overrides, config_file_errors, workdir_note
from quantstudy.prepare.gguf import PREPARED_DIR as GGUF_PREPARED_DIR, source_path as gguf_source_path
from quantstudy.core.hub import hub_models, preflight as hub_preflight
from quantstudy.stage import missing_items as stage_missing, missing_message as stage_message, prompt_set_path
from quantstudy.core.resources import job_resources, model_gpus, route, tensor_parallel_size
from quantstudy.core.schemes import arch_of, evaluation_backend, servable, support
from quantstudy.similarity.textsim import config_errors as textsim_config_errors

USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", Path(workflow.basedir) / ".venv"))


def env_python(env):
    """Interpreter of a rule's env: the activated conda env under --sdm conda, else the
    local venv built from the same envs/<env>.yaml by tools/setup_envs.py."""
    return "python" if USE_CONDA else str(VENVS / env / "bin" / "python")


def missing_envs():
    """Local venvs a real run needs and lacks. Checked in onstart, not at parse time: a dry
    run (a login node planning the grid) needs nothing installed."""
    if USE_CONDA:
        return []
    return [env for env in ("quantize", "serve", "analysis") if not Path(env_python(env)).exists()]


# envs/*.post-deploy.sh installs quantstudy from here into each conda env.
os.environ.update(QUANTSTUDY_ROOT=workflow.basedir)

# Exported, not params: moving the checkout or switching to conda must not look like a
# parameter change. Every job (local or a cluster jobstep) re-parses this file.
for _env in ("quantize", "serve", "analysis"):
    os.environ[f"QS_PYTHON_{_env.upper()}"] = env_python(_env)


def quantize_site_dirs():
    """site-packages of the local quantize env, where a `models.<m>.gguf: {package: ...}` file
    lies (None under conda: the prepare_model job looks it up)."""
    return None if USE_CONDA else sorted(VENVS.glob("quantize/lib/python*/site-packages"))


def lm_eval_tasks_dir():
    """lm-eval's bundled task YAMLs in the local serve env (None under conda)."""
    if USE_CONDA:
        return None
    found = sorted(VENVS.glob("serve/lib/python*/site-packages/lm_eval/tasks"))
    return found[0] if found else None


# Fail on bad input before any job runs; every message names the key (file and line) at fault.
with open(Path(workflow.basedir) / "config/schema/config.schema.yaml") as _f:
    _SCHEMA = yaml.safe_load(_f)


def _config_problems():
    # Snakemake's reader keeps the last of two equal keys: re-read every config file it read.
    errs = config_file_errors(workflow.configfiles)
    if errs:
        return errs, []
    # --config values arrive as strings; give them the schema's type where unambiguous.
    coerce_overrides(config, workflow.config_settings.config, _SCHEMA)
    notes = []
    # A GGUF model's path is its prepared checkpoint (rule prepare_model), for every rule.
    errs += apply_gguf_paths(config)
    try:
        notes = validate_config(
            config, _SCHEMA, workdir=".", lm_eval_tasks_dir=lm_eval_tasks_dir(), gguf_site_dirs=quantize_site_dirs()
        )
    except ConfigError as e:
        errs.append(str(e).removeprefix("invalid config:\n  - ").replace("\n  - ", "\n"))
    else:
        # Text-similarity stage: prompt files are read and checked here too (file and line named).
        errs += textsim_config_errors(config, workdir=".")
    if isinstance(config.get("models"), dict) and isinstance(config.get("schemes"), list):
        errs += output_errors(config, Path("."))
    return errs, notes


_ERRORS, _NOTES = _config_problems()
for _note in _NOTES:
    print(f"quantstudy: not checked: {_note}", file=sys.stderr)
if _ERRORS:
    _errs = "\n".join(_ERRORS).split("\n")
    if workdir_note(workflow.basedir):
        _errs.append(workdir_note(workflow.basedir))
    raise WorkflowError("invalid config:\n  - " + "\n  - ".join(_errs))


QUANTIZED_MODEL = paths.QUANTIZED_MODEL
EVAL_JSON = paths.EVAL_JSON
EVAL_SAMPLES = paths.EVAL_SAMPLES
EVAL_TASK_LOG = "results/logs/evaluate/{model}/{scheme}/{task}.log"
# lm-eval's request caches: kept between runs (not an output), one per checkpoint and engine.
EVAL_CACHE_DIR = "results/cache/evaluate"
SUMMARY_CSV = paths.SUMMARY_CSV
SUMMARY_MD = paths.SUMMARY_MD
GENERATIONS = paths.GENERATIONS
GENERATION_LOGPROBS = paths.GENERATION_LOGPROBS
GENERATION_META = paths.GENERATION_META
SIMILARITY_JSON = paths.SIMILARITY_JSON
PERF_DIR = paths.PERF_DIR
PERF_CSV = paths.PERF_CSV
PERF_SWEEP_CSV = paths.PERF_SWEEP_CSV
COST_CSV = paths.COST_CSV
GUIDELINE_CSV = paths.GUIDELINE_CSV
GUIDELINE_MD = paths.GUIDELINE_MD

MODELS = list(config["models"])
HUB_MODELS = hub_models(config) if config.get("hub_access") else {}
OFFLINE_CACHE = config.get("offline_cache")
if config.get("hub_access"):
    os.environ.update(QS_HUB_ACCESS="1")  # model paths may be hub ids (not local checkpoints)
if OFFLINE_CACHE:
    # Jobs read hub models and datasets from the staged cache, offline even with hub_access
    # (quantstudy/stage.py; runtime.offline_env).
    os.environ.update(QS_OFFLINE_CACHE=str(Path(OFFLINE_CACHE).resolve()))


onstart:
    # Real runs only (not dry runs): what jobs need on this host is checked before any job.
    if missing_envs():
        raise WorkflowError(
            "local envs missing: "
            + ", ".join(f"'{e}' ({env_python(e)})" for e in missing_envs())
            + f"; build them with `python3 -m tools.setup_envs {' '.join(missing_envs())}` "
            "or run with `--sdm conda`"
        )
    # An offline cache missing anything a job reads stops here, naming each item and the
    # command that stages it.
    if OFFLINE_CACHE:
        _tasks = lm_eval_tasks_dir()
        _missing = stage_missing(config, OFFLINE_CACHE, [_tasks] if _tasks else [])
        if _missing:
            raise WorkflowError(stage_message(_missing, OFFLINE_CACHE, workflow.configfiles))
    # Without a cache, a host that cannot reach the hub stops here, before any job, naming
    # each hub model, instead of hanging in a download.
    elif HUB_MODELS:
        _msg = hub_preflight(config)
        if _msg:
            raise WorkflowError(_msg)


SCHEMES = list(config["schemes"])
QUANTIZED = [s for s in SCHEMES if s != BASELINE]
TASKS = list(config["tasks"])
# Optional stage: text similarity to bf16 (+ KL, flips) when config has `similarity:`.
SIMILARITY = config.get("similarity")
# Optional stage: vLLM serving benchmarks -> cost -> guideline when config has `performance:`.
PERFORMANCE = config.get("performance")
GPU_TYPES = sorted({g for m in MODELS for g in model_gpu_types(config, m)})


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    scheme="|".join(map(re.escape, SCHEMES)),
    task="|".join(map(re.escape, TASKS)),
    gpu="|".join(map(re.escape, GPU_TYPES)) or "(?!)",


def model_dir(model, scheme):
    """The checkpoint evaluated for (model, scheme): bf16 is the base model itself."""
    if scheme == BASELINE:
        return config["models"][model]["path"]
    return QUANTIZED_MODEL.format(model=model, scheme=scheme)


def recipe(model, scheme):
    return effective_recipe(config, model, scheme)


def calibration_set(model, scheme):
    cal = recipe(model, scheme).get("calibration")
    return config["calibration_sets"][cal["set"]] if cal else {}


def calibration_file(model, scheme):
    """The local calibration file (an input), or None (no calibration, or a hub dataset)."""
    return calibration_set(model, scheme).get("path")


def job_gpu_type(step, w):
    """The GPU type a job of `step` (quantize, evaluate, ...) runs on. perf: its wildcard; quantize, evaluate
    and generate go to the first type of evaluation.gpu_types they fit (None: no routing)."""
    if step == "perf":
        return w.gpu
    return route(config, step, w.model, getattr(w, "scheme", BASELINE))


def job_res(rule, w, attempt=1):
    """GPUs, memory, runtime and threads of one job: they grow with the model (its
    `gpus`) and with each retry, memory up to its GPU type's node (quantstudy/core/resources.py)."""
    return job_resources(config, rule, w.model, attempt, job_gpu_type(rule, w))


def base_model_input(model):
    """The base checkpoint as a file input, or nothing for a hub id (fetched by the job)."""
    path = config["models"][model]["path"]
    return [] if model in HUB_MODELS else path


def checkpoint_input(model, scheme):
    return base_model_input(model) if scheme == BASELINE else model_dir(model, scheme)


def engine_args(model, task=None):
    """vLLM engine args for a model (and task): config's, the task's over them, sharded
    over the model's GPUs."""
    engine = {**config["evaluation"].get("engine", {}), **(config["tasks"][task].get("engine", {}) if task else {})}
    if model_gpus(config, model) > 0:
        engine["tensor_parallel_size"] = tensor_parallel_size(config, model)
    return engine


def local_task_files():
    """Local task YAMLs and their data: editing them reruns the evaluations."""
    folder = config["evaluation"].get("task_include_path")
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file()) if folder else []


def evaluation_settings(model, task):
    """What an evaluate job depends on (where it is placed is not: gpu_types)."""
    ev = {k: v for k, v in config["evaluation"].items() if k != "gpu_types"}
    return json.dumps({**ev, "engine": engine_args(model, task)}, sort_keys=True)


def evaluation_plan(model, scheme):
    """Every task of one evaluate job: its config entry, evaluation settings and files."""
    w = {"model": model, "scheme": scheme}
    return json.dumps(
        [
            {
                "task": t,
                "task_spec": config["tasks"][t],
                "evaluation": json.loads(evaluation_settings(model, t)),
                "output": EVAL_JSON.format(task=t, **w),
                "samples": EVAL_SAMPLES.format(task=t, **w),
                "log": EVAL_TASK_LOG.format(task=t, **w),
            }
            for t in TASKS
        ],
        sort_keys=True,
    )


def prompt_file():
    return prompt_set_path(config, SIMILARITY["prompt_set"])


def prompt_input():
    """The prompt file as an input where it exists; a staged one may not yet on a login node
    planning the grid (a real run checks the cache before any job)."""
    return (
        [prompt_file()]
        if Path(prompt_file()).exists() or "path" in config["prompt_sets"][SIMILARITY["prompt_set"]]
        else []
    )


def similarity_outputs():
    """Every similarity JSON of the study ([] without a `similarity:` block)."""
    return expand(SIMILARITY_JSON, model=MODELS, scheme=SCHEMES) if SIMILARITY else []


def generation_settings(model):
    """What a generate job depends on: a change reruns it (and only it, downstream)."""
    ev = config["evaluation"]
    return {
        "max_tokens": SIMILARITY["max_tokens"],
        "logprobs_top_k": SIMILARITY["logprobs_top_k"],
        "seed": ev["seed"],  # the evaluations' seed: one per study
        "engine": engine_args(model),
        "env": ev.get("env", {}),
    }


def bf16_generations(w):
    """bf16's generations, which every other scheme is teacher-forced over."""
    return [] if w.scheme == BASELINE else GENERATIONS.format(model=w.model, scheme=BASELINE)


def perf_plan():
    """(model, scheme, GPU type) of every benchmark: each benchmarked scheme on each of the
    model's GPU types that serves its format, natively or emulated (the support matrix)."""
    return [
        (m, s, g)
        for m in MODELS
        for g in model_gpu_types(config, m)
        for s in model_perf_schemes(config, m)
        if servable(config, m, s, arch_of(config, g))
    ]


def perf_dirs():
    """Every perf directory of the study."""
    return [PERF_DIR.format(model=m, scheme=s, gpu=g) for m, s, g in perf_plan()]


def support_table():
    """{model: {gpu: {scheme: support}}} for every benchmarked scheme and GPU type, planned
    or not: perf.csv says what each GPU ran (served_as), the guideline what it cannot."""
    return json.dumps(
        {
            m: {
                g: {s: support(config, m, s, arch_of(config, g)) for s in model_perf_schemes(config, m)}
                for g in model_gpu_types(config, m)
            }
            for m in MODELS
        },
        sort_keys=True,
    )


def performance_outputs():
    """perf/cost/guideline tables ([] without a `performance:` block)."""
    return [PERF_CSV, PERF_SWEEP_CSV, COST_CSV, GUIDELINE_CSV, GUIDELINE_MD] if PERFORMANCE else []


def perf_settings(model):
    """What a perf job depends on: a change reruns that job (and the tables after it)."""
    settings = {k: v for k, v in PERFORMANCE.items() if k not in ("use_cases", "gpu_types", "engine", "env")}
    engine = dict(PERFORMANCE["engine"])
    if model_gpus(config, model) > 0:
        engine["tensor_parallel_size"] = tensor_parallel_size(config, model)
    env = {**config["evaluation"].get("env", {}), **PERFORMANCE.get("env", {})}
    return json.dumps({**settings, "engine": engine, "env": env}, sort_keys=True)


def perf_threads(w):
    """Run locally, a benchmark takes every core, so no other job runs beside it and skews
    its timings; on a cluster it gets the configured threads on its own node."""
    threads = job_res("perf", w)["threads"]
    if workflow.local_exec:
        try:
            return max(threads, workflow.cores)
        except WorkflowError:  # no --cores given (dry runs)
            pass
    return threads


def gpu_type_resource(rule, key):
    """A SLURM resource of the job's GPU type (slurm_partition, constraint); None = unset."""

    def resource(w):
        gpu = job_gpu_type(rule, w)
        return config["gpu_types"][gpu].get(key) if gpu else None

    return resource


# GGUF models (rule prepare_model)
def gguf_models():
    return [m for m in MODELS if "gguf" in config["models"][m]]


def gguf_input(w):
    """The GGUF file as an input where it is found here (a package's file under conda is
    looked up by the job itself)."""
    spec = config["models"][w.model]["gguf"]
    src = gguf_source_path(spec, quantize_site_dirs() or [], Path("."))
    return [str(src)] if src else []


def gguf_source(w):
    """The model's `gguf:` block as JSON: {path} or {package, file}."""
    return json.dumps(config["models"][w.model]["gguf"], sort_keys=True)
