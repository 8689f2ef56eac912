# Greedy answers of each (model, scheme) to the configured prompt set, through vLLM with the
# chat template, and in the same engine start the teacher-forced top-k logprobs over bf16's
# answers (for the KL divergence). Every scheme but bf16 waits for bf16's answers.


if SIMILARITY:

    rule generate:
        input:
            script="quantstudy/generate/generate.py",
            model=lambda w: checkpoint_input(w.model, w.scheme),
            prompts=lambda w: prompt_input(),
            reference=bf16_generations,
        output:
            generations=GENERATIONS,
            logprobs=GENERATION_LOGPROBS,
            meta=GENERATION_META,
        log:
            "results/logs/generate/{model}/{scheme}.log",
        benchmark:
            "results/benchmarks/generate/{model}/{scheme}.tsv"
        conda:
            "../envs/serve.yaml"
        threads: lambda w: job_res("generate", w)["threads"]
        resources:
            gpu=lambda w: job_res("generate", w)["gpu"],
            mem_mb=lambda w, attempt: job_res("generate", w, attempt)["mem_mb"],
            runtime=lambda w, attempt: job_res("generate", w, attempt)["runtime"],
            slurm_partition=gpu_type_resource("generate", "slurm_partition"),
            constraint=gpu_type_resource("generate", "constraint"),
        params:
            model_dir=lambda w: model_dir(w.model, w.scheme),
            prompts=lambda w: prompt_file(),
            settings=lambda w: json.dumps(generation_settings(w.model), sort_keys=True),
            backend=lambda w: evaluation_backend(config, w.model, w.scheme),
        shell:
            "$QS_PYTHON_SERVE -m quantstudy.generate.generate --model-dir {params.model_dir:q} --model {wildcards.model:q}"
            " --scheme {wildcards.scheme:q} --prompts {params.prompts:q} --reference {input.reference:q}"
            " --settings {params.settings:q} --backend {params.backend} --output {output.generations:q}"
            " --logprobs {output.logprobs:q} --meta {output.meta:q} > {log:q} 2>&1"
