#!/usr/bin/env python
"""Evaluate one task on one checkpoint with lm-eval's vLLM backend (or, with `--backend hf`,
its Hugging Face backend: transformers + compressed-tensors, for formats vLLM cannot serve;
quantstudy/core/hfbackend.py says what that computes); write JSON + samples.

Rule `evaluate` calls this; to debug one step by hand (serve env):

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


def evaluate(
    model_dir, model, scheme, task, spec, evaluation, include_path, output, samples_path, backend="vllm"
) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    s = settings_from(spec, evaluation, backend)
    if backend == "hf":
        s["model_args"] = hf_model_args(s["engine"])
    unsafe = unsafe_code_settings(
        s["lm_eval_task"], [Path(lm_eval.__file__).parent / "tasks"] + ([Path(include_path)] if include_path else [])
    )
    os.environ.update(unsafe["env"])  # before lm-eval imports the task's utils (code_eval loads there)
    s["confirm_run_unsafe_code"] = unsafe["confirm_run_unsafe_code"]
    started = time.time()
    results = lm_eval.simple_evaluate(
        model=backend,
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
    )
    seconds = time.time() - started
    if results is None:
        raise cli.StepError("lm-eval returned no results")
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


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    add_checkpoint_args(ap)
    ap.add_argument("--task", required=True, help="task name (config key)")
    ap.add_argument("--task-spec", type=cli.json_arg, required=True, help="the task's config entry as JSON")
    ap.add_argument(
        "--evaluation",
        type=cli.json_arg,
        required=True,
        help="the config's evaluation block as JSON (task_include_path: the local lm-eval task YAMLs)",
    )
    hfbackend.add_backend_arg(ap)
    ap.add_argument("--output", required=True, help="eval JSON (written atomically)")
    ap.add_argument("--samples", required=True, help="per-item samples JSONL (written atomically)")
    args = ap.parse_args(argv)
    evaluation = args.evaluation
    problem = checkpoint_error(args.model_dir, args.scheme)  # named before any engine starts
    if problem:
        raise cli.StepError(problem)
    offline_env(evaluation.get("env"))
    if args.backend == "vllm":  # torch eager (hf) keeps the job's thread count
        engine_threads_env()
    evaluate(
        args.model_dir,
        args.model,
        args.scheme,
        args.task,
        args.task_spec,
        evaluation,
        evaluation["task_include_path"],
        args.output,
        args.samples,
        args.backend,
    )
    return 0


if __name__ == "__main__":  # vLLM spawns workers: the guard is required
    step.run(main)  # supervised: a finished step cannot fail in teardown
