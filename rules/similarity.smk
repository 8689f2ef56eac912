# Each scheme's answers vs bf16's: ROUGE-1/L, BLEU, chrF, STS, BERTScore, exact match,
# mean per-token KL from bf16's next-token distributions, and per-item correctness flips
# on every lm-eval task. bf16 is compared with itself too (1 / 0 by construction).


if SIMILARITY:

    localrules:
        similarity,

    rule similarity:
        input:
            script="quantstudy/similarity/similarity.py",
            generations=GENERATIONS,
            logprobs=GENERATION_LOGPROBS,
            meta=GENERATION_META,
            reference=lambda w: GENERATIONS.format(model=w.model, scheme=BASELINE),
            reference_logprobs=lambda w: GENERATION_LOGPROBS.format(model=w.model, scheme=BASELINE),
            samples=lambda w: expand(EVAL_SAMPLES, model=w.model, scheme=w.scheme, task=TASKS),
            reference_samples=lambda w: expand(EVAL_SAMPLES, model=w.model, scheme=BASELINE, task=TASKS),
        output:
            SIMILARITY_JSON,
        log:
            "results/logs/similarity/{model}/{scheme}.log",
        benchmark:
            "results/benchmarks/similarity/{model}/{scheme}.tsv"
        conda:
            "../envs/analysis.yaml"
        threads: lambda w: job_res("similarity", w)["threads"]
        resources:
            mem_mb=lambda w, attempt: job_res("similarity", w, attempt)["mem_mb"],
            runtime=lambda w, attempt: job_res("similarity", w, attempt)["runtime"],
        params:
            settings=json.dumps(SIMILARITY, sort_keys=True),
            # [task, primary metric] per task, in the order of the samples inputs.
            flip_tasks=json.dumps([[t, config["tasks"][t]["metrics"][0]] for t in TASKS]),
        shell:
            "$QS_PYTHON_ANALYSIS -m quantstudy.similarity.similarity --model {wildcards.model:q} --scheme {wildcards.scheme:q}"
            " --generations {input.generations:q} --reference {input.reference:q}"
            " --logprobs {input.logprobs:q} --reference-logprobs {input.reference_logprobs:q}"
            " --meta {input.meta:q} --flip-tasks {params.flip_tasks:q} --reference-samples {input.reference_samples:q}"
            " --samples {input.samples:q} --settings {params.settings:q}"
            " --output {output:q} --threads {threads} > {log:q} 2>&1"
