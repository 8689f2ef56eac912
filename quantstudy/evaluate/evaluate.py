#!/usr/bin/env python
"""Evaluate tasks on one checkpoint with lm-eval's vLLM backend (or, with `--backend hf`,
its Hugging Face backend: transformers + compressed-tensors, for formats vLLM cannot serve;
quantstudy/core/hfbackend.py says what that computes); write JSON + samples per task.

One model load serves every task of a (model, scheme): rule `evaluate` runs one job per
(model, scheme) and passes `--plan`, a JSON list of {task, task_spec, evaluation, output,
samples, log}. Tasks whose engines differ only in max_model_len (the paper's per-task
lengths) share one, started at the longest, and lm-eval's max_length is set to each task's
own, so each truncates as on an engine of its own (model_loads, set_max_length); any other
engine setting (dtype, KV cache, ...) gets an engine of its own. A result records the task's
`settings.engine` and, in `lm_eval.config.model_args`, the engine that answered it. Each task
still gets its own JSON, samples and log, and lm-eval's request cache (one per checkpoint,
`--cache-dir`) answers the requests of tasks whose settings did not change when the job reruns.

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


def hf_model_args(engine: dict, device: str | None = None) -> dict:
    """lm-eval `hf` model arguments from the engine block: dtype, and max_model_len as
    max_length (lm-eval's vLLM model uses max_model_len as its max_length: both truncate
    alike). Every other engine key is a vLLM argument the hf model must not get. `device`:
    where it runs (default: what torch sees here)."""
    args = {"dtype": hfbackend.dtype(engine), "device": device or hfbackend.device()}
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


# The model argument that sets lm-eval's `max_length`, per backend: its vLLM model takes the
# engine's max_model_len as max_length, its hf model max_length itself.
LENGTH_ARG = {"vllm": "max_model_len", "hf": "max_length"}


def _key(backend: str, model_args: dict, batch_size) -> str:
    return json.dumps({"backend": backend, "model_args": model_args, "batch_size": batch_size}, sort_keys=True)


def task_key(backend: str, model_dir: str, s: dict) -> str:
    """What decides a task's answers: the model as lm-eval builds it for this task alone, its
    max length included. Names the task's request cache (tasks with one key share a file)."""
    return _key(backend, model_args_for(backend, model_dir, s), s["batch_size"])


def max_length(backend: str, s: dict) -> int | None:
    """The length lm-eval cuts this task's requests to (None: the model's own maximum)."""
    return model_args_for(backend, "", s).get(LENGTH_ARG[backend])


def engine_args(backend: str, model_dir: str, s: dict) -> dict:
    """The task's model arguments less its max length, which lm-eval applies per task on a
    shared model (set_max_length): everything else (dtype, backend, KV cache, parallelism,
    memory) needs a model load of its own."""
    return {k: v for k, v in model_args_for(backend, model_dir, s).items() if k != LENGTH_ARG[backend]}


def engine_key(backend: str, model_dir: str, s: dict) -> str:
    """What one model load is built from: tasks with the same key share it."""
    return _key(backend, engine_args(backend, model_dir, s), s["batch_size"])


def engine_length(lengths) -> int | None:
    """The length one model load starts at for tasks of these lengths: the longest, so each
    task's requests fit; None (the model's own maximum, which holds any) if a task sets none."""
    lengths = list(lengths)
    return None if None in lengths else max(lengths)


def engine_groups(items: list[dict], key) -> list[list[dict]]:
    """Plan items grouped by engine key, in plan order (first appearance of each key)."""
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def model_loads(tasks: list[dict], backend: str, model_dir: str) -> list[dict]:
    """The model loads of one job, in plan order: {model_args, batch_size, tasks}. `tasks`:
    plan items with their `settings`. Tasks whose models differ only in max length (the paper's
    per-task max_model_len) share one load at the longest of them; each then runs at its own
    (set_max_length), so it truncates and generates as on a model of its own."""
    loads = []
    for group in engine_groups(tasks, lambda t: engine_key(backend, model_dir, t["settings"])):
        s = group[0]["settings"]
        args = engine_args(backend, model_dir, s)
        length = engine_length(max_length(backend, t["settings"]) for t in group)
        if length is not None:
            args[LENGTH_ARG[backend]] = length
        loads.append({"model_args": args, "batch_size": s["batch_size"], "tasks": group})
    return loads


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


def cache_file(cache_dir: str, model: str, scheme: str, model_dir: str, key: str, versions: dict) -> str:
    """lm-eval's request cache of one (model, scheme) and task key. Its own key is the request
    only, so the file is named by everything that changes an answer: the checkpoint's files,
    the task's model and backend settings (task_key: its max length, not the shared model's,
    which only has to hold it) and the package versions. lm-eval appends `_rank0.db`."""
    ident = json.dumps(
        {
            "model": model,
            "scheme": scheme,
            "checkpoint": checkpoint_fingerprint(model_dir),
            "engine": key,
            "versions": versions,
        },
        sort_keys=True,
    )
    return str(Path(cache_dir) / model / scheme / hashlib.sha256(ident.encode()).hexdigest()[:16])


def load_lm(backend: str, model_args: dict, batch_size):
    """lm-eval's model, built as simple_evaluate builds it from a name (one engine start)."""
    from lm_eval.api.registry import get_model

    log.info("Initializing %s model, with arguments: %s", backend, model_args)  # lm-eval's own wording
    return get_model(backend).create_from_arg_obj(
        model_args, {"batch_size": batch_size, "max_batch_size": None, "device": None}
    )


def set_max_length(lm, length: int | None) -> None:
    """Run the next task at its own max length on a model built for the longest. lm-eval
    0.4.13's vLLM and hf models (vllm_causallms.py, huggingface.py) take `max_length` from
    `_max_length` when set (their constructors store max_model_len / max_length there), else
    from the engine's max_model_len (vLLM) or the model config (hf); every truncation reads
    it per request: generation cuts the context to max_length - max_gen_toks (maybe_truncate,
    which fixes max_tokens too), loglikelihood to its last max_length - 1 tokens. So no request
    reaches the engine longer than the task's length, and the longer engine computes the same
    tokens. There is no public setter; None gives what a model built without one gives."""
    lm._max_length = length


def release(lm) -> None:
    """Shut a vLLM engine down before the next model load: dropping the reference leaves its
    memory to the garbage collector (in multiprocess mode to its engine-core process's exit),
    and the next engine could find the GPU still held. vLLM 0.32 has no LLM.shutdown(); its own
    order (model_loader/tensorizer.py) is the renderer, then the engine core (its process, or
    in-process its executor). lm-eval's hf model has no engine: free_memory frees it."""
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    if engine is None:
        return
    for part in (getattr(engine, "renderer", None), engine.engine_core):
        stop = getattr(part, "shutdown", None)
        if stop is not None:
            stop()


def free_memory(backend: str) -> None:
    """Once the last reference to a model is gone: collect it and hand its GPU memory back
    (torch's caching allocator keeps freed blocks). On vLLM its cleanup_dist_env_and_memory
    also tears down the process-group state of an in-process engine, so the next one sets up
    its own; it skips the device cache on a CPU."""
    if backend == "vllm":
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
        return
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def lm_settings(spec: dict, evaluation: dict, backend: str, device: str | None = None) -> dict:
    """A task's settings as far as they decide its model: settings_from, plus the hf model's
    arguments on that backend."""
    s = settings_from(spec, evaluation, backend)
    if backend == "hf":
        s["model_args"] = hf_model_args(s["engine"], device)
    return s


def task_settings(spec: dict, evaluation: dict, include_path, backend: str) -> dict:
    """Everything a task runs with (recorded in its output): lm_settings and whether it may
    run model-written code. Computed once per task and job: the unsafe-code scan reads YAMLs."""
    import lm_eval

    s = lm_settings(spec, evaluation, backend)
    unsafe = unsafe_code_settings(
        s["lm_eval_task"], [Path(lm_eval.__file__).parent / "tasks"] + ([Path(include_path)] if include_path else [])
    )
    os.environ.update(unsafe["env"])  # before lm-eval imports the task's utils (code_eval loads there)
    s["confirm_run_unsafe_code"] = unsafe["confirm_run_unsafe_code"]
    return s


def evaluate(lm, model_args: dict, item: dict, model_dir, model, scheme, backend="vllm", cache=None) -> dict:
    """One task of the plan on a loaded model. `model_args`: what `lm` was built from (lm-eval
    records them); `item`: the plan item with its `settings` (task_settings); `cache`: lm-eval's
    request cache file for it (None: no cache)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    s, spec, include_path = item["settings"], item["task_spec"], item["evaluation"]["task_include_path"]
    set_max_length(lm, max_length(backend, s))
    started = time.time()
    results = lm_eval.simple_evaluate(
        model=lm,
        model_args=model_args,
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
        "task": item["task"],
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
    atomic.write_jsonl(item["samples"], flat_samples(results, name))
    atomic.write_json(item["output"], out)
    log.info(
        "%s/%s/%s: %s (n=%s) in %.1f s",
        model,
        scheme,
        item["task"],
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
    """Every task of `plan` on one checkpoint: one model load per engine group (model_loads)."""
    tasks = [
        {**i, "settings": task_settings(i["task_spec"], i["evaluation"], i["evaluation"]["task_include_path"], backend)}
        for i in plan
    ]
    versions = package_versions(["lm_eval", "vllm", "transformers", "torch", "compressed-tensors"])
    outs = []
    for load in model_loads(tasks, backend, model_dir):
        started = time.time()
        lm = load_lm(backend, load["model_args"], load["batch_size"])
        log.info(
            "%s/%s: model loaded in %.1f s for %s",
            model,
            scheme,
            time.time() - started,
            [t["task"] for t in load["tasks"]],
        )
        for t in load["tasks"]:
            key = task_key(backend, model_dir, t["settings"])
            cache = cache_file(cache_dir, model, scheme, model_dir, key, versions) if cache_dir else None
            with task_log(t.get("log")):
                outs.append(evaluate(lm, load["model_args"], t, model_dir, model, scheme, backend, cache))
        release(lm)  # before the next group's engine starts, not when the collector gets to it
        del lm
        free_memory(backend)
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
