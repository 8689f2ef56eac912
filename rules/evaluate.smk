# One lm-eval run per (model, scheme, task): scores + per-item samples. The backend is vLLM
# where the evaluation hardware serves the format, else hf (quantstudy.core.schemes).


rule evaluate:
    input:
        script="quantstudy/evaluate/evaluate.py",
        model=lambda w: checkpoint_input(w.model, w.scheme),
        # Task YAMLs and their data: editing them reruns the evaluations.
        tasks=local_task_files(),
    output:
        json=EVAL_JSON,
        samples=EVAL_SAMPLES,
    log:
        "results/logs/evaluate/{model}/{scheme}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{scheme}/{task}.tsv"
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
        task_spec=lambda w: json.dumps(config["tasks"][w.task], sort_keys=True),
        model_dir=lambda w: model_dir(w.model, w.scheme),
        evaluation=lambda w: evaluation_settings(w.model, w.task),
        backend=lambda w: evaluation_backend(config, w.model, w.scheme),
    shell:
        "$QS_PYTHON_SERVE -m quantstudy.evaluate.evaluate --model-dir {params.model_dir:q} --model {wildcards.model:q}"
        " --scheme {wildcards.scheme:q} --task {wildcards.task:q} --task-spec {params.task_spec:q}"
        " --evaluation {params.evaluation:q} --backend {params.backend}"
        " --output {output.json:q} --samples {output.samples:q} > {log:q} 2>&1"
