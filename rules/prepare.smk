# GGUF file -> bf16 safetensors checkpoint at models/{model}, for models whose config names
# `gguf:` (quantstudy/gguf.py, quantstudy/prepare.py). That dir is then the model's path:
# bf16 evaluates it, quantize starts from it. Nothing of it is in git.


rule prepare_model:
    input:
        script="scripts/prepare_model.py",
        gguf=gguf_input,
    output:
        directory(GGUF_PREPARED_DIR),
    wildcard_constraints:
        model="|".join(map(re.escape, gguf_models())) or "(?!)",
    params:
        source=gguf_args,
        check_prompt=lambda w: config["models"][w.model].get("check_prompt", "What is the capital of France?"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: lambda w: job_res("prepare_model", w)["threads"]
    resources:
        mem_mb=lambda w, attempt: job_res("prepare_model", w, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_res("prepare_model", w, attempt)["runtime"],
    shell:
        "$QS_PYTHON_QUANTIZE {input.script:q} {params.source} --output {output:q}"
        " --check-prompt {params.check_prompt:q} --threads {threads} > {log:q} 2>&1"
