#!/usr/bin/env python
"""Evaluate tasks on one checkpoint with lm-eval's vLLM backend (or, with `--backend hf`,
its Hugging Face backend: transformers + compressed-tensors, for formats vLLM cannot serve;
quantstudy/core/hfbackend.py says what that computes); write JSON + samples per task.

One model load serves every task of a (model, scheme) (tasks whose engine settings differ
get one engine each): rule `evaluate` runs one job per (model, scheme) and passes `--plan`,
a JSON list of {task, task_spec, evaluation, output, samples, log}. Each task still gets its
own JSON, samples and log, and lm-eval's request cache (one per checkpoint, `--cache-dir`)
answers the requests of tasks whose settings did not change when the job reruns.

To debug one task by hand (serve env):

    .venv/serve/bin/python -m quantstudy.evaluate.evaluate --model-dir fixtures/tiny-llama --model tiny-llama \\
        --scheme bf16 --task count_letter --task-spec '{"lm_eval_task": "qs_count_letter", "suite": "fixture",
        "metrics": ["acc,none"], "num_fewshot": 0, "apply_chat_template": false, "fewshot_as_multiturn": false}' \\
        --evaluation '{"task_include_path": "data/tasks/fixture", "batch_size": "auto", "seed": 1234,
        "limit": null, "engine": {"max_model_len": 512}}' --output /tmp/e.json --samples /tmp/e.samples.jsonl

Add `--backend hf` for the hf backend: it takes `dtype` and `max_model_len` (as lm-eval's
`max_length`) from the engine block, ignores the other (vLLM-only) engine arguments, and
runs on the GPU when torch sees one, else on the CPU. The result records `settings.backend`,
`settings.model_args` (what lm-eval's hf model got) and `served_as`.

Both JSON arguments are complete, as the rule passes them: config validation fills every
default from config/schema/config.schema.yaml, the one place a default lives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from quantstudy.core import atomic, cli, hfbackend, step
from quantstudy.core.runtime import (
    add_checkpoint_args,
    checkpoint_error,
    engine_threads_env,
    offline_env,
    package_versions,
)
from quantstudy.evaluate.lmeval import EVAL_FORMAT, extract_scores, flat_samples, sample_count, subtask_results

log = logging.getLogger("evaluate")


def settings_from(spec: dict, evaluation: dict, backend: str = hfbackend.DEFAULT_BACKEND) -> dict:
    """The exact lm-eval settings of one run (recorded in the output)."""
    return {
        "lm_eval_task": spec["lm_eval_task"],
        "num_fewshot": spec["num_fewshot"],
        "apply_chat_template": spec["apply_chat_template"],
        "fewshot_as_multiturn": spec["fewshot_as_multiturn"],
        "gen_kwargs": spec.get("gen_kwargs"),
        "batch_size": evaluation["batch_size"],
        "limit": evaluation["limit"],
        "seed": evaluation["seed"],
        "engine": evaluation.get("engine", {}),
        "backend": backend,
    }


def hf_model_args(engine: dict) -> dict:
    """lm-eval `hf` model arguments from the engine block: dtype, and max_model_len as
    max_length (lm-eval's vLLM model uses max_model_len as its max_length: both truncate
    alike). Every other engine key is a vLLM argument the hf model must not get."""
    args = {"dtype": hfbackend.dtype(engine), "device": hfbackend.device()}
    if engine.get("max_model_len"):
        args["max_length"] = int(engine["max_model_len"])
    return args


def model_args_for(backend: str, model_dir: str, s: dict) -> dict:
    if backend == "hf":
        return {"pretrained": model_dir, **s["model_args"]}
    return {"pretrained": model_dir, "seed": s["seed"], **s["engine"]}


def unsafe_code_settings(lm_eval_task: str, task_dirs) -> dict:
    """What a task marked `unsafe_code: true` in its YAML (HumanEval: it executes the model's
    code) needs to run: lm-eval's confirmation, and the variable HF `evaluate`'s code_eval
    metric refuses to run without. Read from the task YAMLs, so no task is confirmed blindly."""
    from quantstudy.evaluate.taskindex import TaskIndex

    # The local folder first: scanning lm-eval's ~10k YAMLs costs seconds per job.
    for dirs in (task_dirs[1:], task_dirs):
        index = TaskIndex(dirs)
        if index.leaf_configs(lm_eval_task):
            break
    unsafe = index.unsafe_code(lm_eval_task)
    return {"confirm_run_unsafe_code": unsafe, "env": {"HF_ALLOW_CODE_EVAL": "1"} if unsafe else {}}


def lm_key(backend: str, model_dir: str, s: dict) -> str:
    """What one engine is built from: tasks with the same key share one model load."""
    return json.dumps(
        {"backend": backend, "model_args": model_args_for(backend, model_dir, s), "batch_size": s["batch_size"]},
        sort_keys=True,
    )


def engine_groups(items: list[dict], key) -> list[list[dict]]:
    """Plan items grouped by engine key, in plan order (first appearance of each key)."""
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def checkpoint_fingerprint(model_dir: str) -> list:
    """(name, size, mtime) of every checkpoint file: a re-made checkpoint at the same path
    is another model, and its cached answers must not be served."""
    root = Path(model_dir)
    if not root.is_dir():  # a hub id: its name is all there is (the staged cache is fixed)
        return [model_dir]
    return [
        [str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns]
        for f in sorted(root.rglob("*"))
        if f.is_file()
    ]


def cache_file(cache_dir: str, model: str, scheme: str, model_dir: str, engine_key: str, versions: dict) -> str:
    """lm-eval's request cache of one (model, scheme) and engine. Its own key is the request
    only, so the file is named by everything that changes an answer: the checkpoint's files,
    the engine and backend settings and the package versions. lm-eval appends `_rank0.db`."""
    ident = json.dumps(
        {
            "model": model,
            "scheme": scheme,
            "checkpoint": checkpoint_fingerprint(model_dir),
            "engine": engine_key,
            "versions": versions,
        },
        sort_keys=True,
    )
    return str(Path(cache_dir) / model / scheme / hashlib.sha256(ident.encode()).hexdigest()[:16])


def load_lm(backend: str, model_dir: str, s: dict):
    """lm-eval's model, built as simple_evaluate builds it from a name (one engine start)."""
    from lm_eval.api.registry import get_model

    args = model_args_for(backend, model_dir, s)
    log.info("Initializing %s model, with arguments: %s", backend, args)  # lm-eval's own wording
    return get_model(backend).create_from_arg_obj(
        args, {"batch_size": s["batch_size"], "max_batch_size": None, "device": None}
    )


def task_settings(spec: dict, evaluation: dict, include_path, backend: str) -> dict:
    import lm_eval

    s = settings_from(spec, evaluation, backend)
    if backend == "hf":
        s["model_args"] = hf_model_args(s["engine"])
    unsafe = unsafe_code_settings(
        s["lm_eval_task"], [Path(lm_eval.__file__).parent / "tasks"] + ([Path(include_path)] if include_path else [])
    )
    os.environ.update(unsafe["env"])  # before lm-eval imports the task's utils (code_eval loads there)
    s["confirm_run_unsafe_code"] = unsafe["confirm_run_unsafe_code"]
    return s


def evaluate(
    model_dir,
    model,
    scheme,
    task,
    spec,
    evaluation,
    include_path,
    output,
    samples_path,
    backend="vllm",
    lm=None,
    cache=None,
) -> dict:
    """One task. `lm`: a model already loaded for this checkpoint (else one is built);
    `cache`: lm-eval's request cache file for it (None: no cache)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    s = task_settings(spec, evaluation, include_path, backend)
    if lm is None:
        lm = load_lm(backend, model_dir, s)
    started = time.time()
    results = lm_eval.simple_evaluate(
        model=lm,
        model_args=model_args_for(backend, model_dir, s),
        tasks=[s["lm_eval_task"]],
        num_fewshot=s["num_fewshot"],
        batch_size=s["batch_size"],
        limit=s["limit"],
        apply_chat_template=s["apply_chat_template"],
        fewshot_as_multiturn=s["fewshot_as_multiturn"],
        gen_kwargs=s["gen_kwargs"],
        log_samples=True,
        task_manager=TaskManager(include_path=include_path) if include_path else TaskManager(),
        random_seed=s["seed"],
        numpy_random_seed=s["seed"],
        torch_random_seed=s["seed"],
        fewshot_random_seed=s["seed"],
        confirm_run_unsafe_code=s["confirm_run_unsafe_code"],
        use_cache=cache,
    )
    seconds = time.time() - started
    if results is None:
        raise cli.StepError("lm-eval returned no results")
    # lm-eval records a pre-built model by its class name: keep the backend's name.
    results.setdefault("config", {})["model"] = backend
    name = s["lm_eval_task"]
    out = {
        "format": EVAL_FORMAT,
        "model": model,
        "scheme": scheme,
        "task": task,
        "suite": spec["suite"],
        "checkpoint": model_dir,
        "metrics": extract_scores(results, name, spec["metrics"]),
        "n_samples": sample_count(results, name),
        "settings": s,
        "seconds": round(seconds, 2),
        "versions": package_versions(
            ["lm_eval", "vllm", "transformers", "torch", "compressed-tensors"]
            + (["accelerate"] if backend == "hf" else [])
        ),
        "lm_eval": {
            "results": results["results"].get(name),
            "config": results.get("config"),
            "task_config": results.get("configs", {}).get(name),
            "n-samples": results.get("n-samples", {}).get(name),
            # A group's per-subtask scores (the leaderboard normalizes per subtask).
            "subtasks": subtask_results(results, name),
        },
    }
    if backend == "hf":
        out["served_as"] = hfbackend.served_as(model_dir, s["model_args"]["dtype"])
    # Samples first: the JSON is the rule's "done" marker, so it lands last.
    atomic.write_jsonl(samples_path, flat_samples(results, name))
    atomic.write_json(output, out)
    log.info(
        "%s/%s/%s: %s (n=%s) in %.1f s",
        model,
        scheme,
        task,
        {m: round(v["score"], 4) for m, v in out["metrics"].items()},
        out["n_samples"],
        seconds,
    )
    return out


class task_log:
    """Every log record of one task's evaluation also goes to that task's own log file."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.handler = logging.FileHandler(self.path, mode="w")
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        if self.path:
            logging.getLogger().removeHandler(self.handler)
            self.handler.close()


def evaluate_plan(model_dir, model, scheme, plan, backend="vllm", cache_dir=None) -> list[dict]:
    """Every task of `plan` on one checkpoint: one model load per engine group."""
    include = {id(i): i["evaluation"]["task_include_path"] for i in plan}
    settings = {id(i): task_settings(i["task_spec"], i["evaluation"], include[id(i)], backend) for i in plan}
    versions = package_versions(["lm_eval", "vllm", "transformers", "torch", "compressed-tensors"])
    outs = []
    for group in engine_groups(plan, lambda i: lm_key(backend, model_dir, settings[id(i)])):
        key = lm_key(backend, model_dir, settings[id(group[0])])
        started = time.time()
        lm = load_lm(backend, model_dir, settings[id(group[0])])
        log.info(
            "%s/%s: model loaded in %.1f s for %s", model, scheme, time.time() - started, [i["task"] for i in group]
        )
        cache = cache_file(cache_dir, model, scheme, model_dir, key, versions) if cache_dir else None
        for item in group:
            with task_log(item.get("log")):
                outs.append(
                    evaluate(
                        model_dir,
                        model,
                        scheme,
                        item["task"],
                        item["task_spec"],
                        item["evaluation"],
                        include[id(item)],
                        item["output"],
                        item["samples"],
                        backend,
                        lm=lm,
                        cache=cache,
                    )
                )
        del lm
    return outs


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    add_checkpoint_args(ap)
    ap.add_argument(
        "--plan",
        type=cli.json_arg,
        help="JSON list of {task, task_spec, evaluation, output, samples, log}: every task of this checkpoint",
    )
    ap.add_argument("--task", help="one task (config key), instead of --plan")
    ap.add_argument("--task-spec", type=cli.json_arg, help="the task's config entry as JSON")
    ap.add_argument(
        "--evaluation",
        type=cli.json_arg,
        help="the config's evaluation block as JSON (task_include_path: the local lm-eval task YAMLs)",
    )
    hfbackend.add_backend_arg(ap)
    ap.add_argument("--output", help="eval JSON (written atomically)")
    ap.add_argument("--samples", help="per-item samples JSONL (written atomically)")
    ap.add_argument("--cache-dir", help="lm-eval request caches, one per checkpoint and engine (default: none)")
    args = ap.parse_args(argv)
    plan = args.plan
    if plan is None:
        if not (args.task and args.task_spec and args.evaluation and args.output and args.samples):
            ap.error("give --plan, or --task, --task-spec, --evaluation, --output and --samples")
        plan = [
            {
                "task": args.task,
                "task_spec": args.task_spec,
                "evaluation": args.evaluation,
                "output": args.output,
                "samples": args.samples,
            }
        ]
    if not plan:
        ap.error("--plan holds no task")
    problem = checkpoint_error(args.model_dir, args.scheme)  # named before any engine starts
    if problem:
        raise cli.StepError(problem)
    # env is the evaluation block's, which is one per study (tasks override only the engine)
    offline_env(plan[0]["evaluation"].get("env"))
    if args.backend == "vllm":  # torch eager (hf) keeps the job's thread count
        engine_threads_env()
    evaluate_plan(args.model_dir, args.model, args.scheme, plan, args.backend, args.cache_dir)
    return 0


if __name__ == "__main__":  # vLLM spawns workers: the guard is required
    step.run(main)  # supervised: a finished step cannot fail in teardown
