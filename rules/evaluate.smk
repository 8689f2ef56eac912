# One lm-eval job per (model, scheme): one model load answers every task (at the longest of
# their max_model_len, each task cut at its own; other engine settings that differ get an
# engine each), with one JSON, samples file and log per task.
# Why not a vLLM service job shared by per-task jobs: docs/structure.md ("Evaluation shape").
# The backend is vLLM where the evaluation hardware serves the format, else hf
# (quantstudy.core.schemes).


rule evaluate:
    input:
        script="quantstudy/evaluate/evaluate.py",
        model=lambda w: checkpoint_input(w.model, w.scheme),
        # Task YAMLs and their data: editing them reruns the evaluations.
        tasks=local_task_files(),
    output:
        json=expand(EVAL_JSON, task=TASKS, allow_missing=True),
        samples=expand(EVAL_SAMPLES, task=TASKS, allow_missing=True),
    log:
        job="results/logs/evaluate/{model}/{scheme}.log",
        tasks=expand(EVAL_TASK_LOG, task=TASKS, allow_missing=True),
    benchmark:
        "results/benchmarks/evaluate/{model}/{scheme}.tsv"
    conda:
        "../envs/serve.yaml"
    threads: lambda w: job_res("evaluate", w)["threads"]
    resources:
        gpu=lambda w: job_res("evaluate", w)["gpu"],
        mem_mb=lambda w, attempt: job_res("evaluate", w, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_res("evaluate", w, attempt)["runtime"],
        slurm_partition=gpu_type_resource("evaluate", "slurm_partition"),
        constraint=gpu_type_resource("evaluate", "constraint"),
    params:
        # Every task's settings: a change reruns this job; lm-eval's request cache (one
        # per checkpoint and engine) answers the tasks that did not change.
        plan=lambda w: evaluation_plan(w.model, w.scheme),
        model_dir=lambda w: model_dir(w.model, w.scheme),
        backend=lambda w: evaluation_backend(config, w.model, w.scheme),
        cache_dir=EVAL_CACHE_DIR,
    shell:
        "$QS_PYTHON_SERVE -m quantstudy.evaluate.evaluate --model-dir {params.model_dir:q} --model {wildcards.model:q}"
        " --scheme {wildcards.scheme:q} --plan {params.plan:q} --backend {params.backend}"
        " --cache-dir {params.cache_dir:q} > {log.job:q} 2>&1"
