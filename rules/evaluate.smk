# One lm-eval run (vLLM backend) per (model, scheme, task): scores + per-item samples.


rule evaluate:
    input:
        script="scripts/evaluate.py",
        model=lambda w: model_dir(w.model, w.scheme),
        # Task YAMLs and their data: editing them reruns the evaluations.
        tasks=sorted(
            str(p)
            for p in Path(config["evaluation"]["task_include_path"]).rglob("*")
            if p.is_file()
        ),
    output:
        json=EVAL_JSON,
        samples=EVAL_SAMPLES,
    params:
        task_spec=lambda w: json.dumps(config["tasks"][w.task], sort_keys=True),
        evaluation=json.dumps(config["evaluation"], sort_keys=True),
        include_path=lambda w: config["evaluation"]["task_include_path"],
    log:
        "results/logs/evaluate/{model}/{scheme}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{scheme}/{task}.tsv"
    conda:
        "../envs/serve.yaml"
    threads: res("evaluate", "threads", 2)
    resources:
        mem_mb=res("evaluate", "mem_mb", 6000),
        runtime=res("evaluate", "runtime", 60),
    shell:
        "$QS_PYTHON_SERVE {input.script:q} --model-dir {input.model:q} --model {wildcards.model:q}"
        " --scheme {wildcards.scheme:q} --task {wildcards.task:q} --task-spec {params.task_spec:q}"
        " --evaluation {params.evaluation:q} --include-path {params.include_path:q}"
        " --output {output.json:q} --samples {output.samples:q} > {log:q} 2>&1"
