# GGUF file -> bf16 safetensors checkpoint at models/{model}, for models whose config names
# `gguf:` (quantstudy/prepare/gguf.py, quantstudy/prepare/dequantize.py). That dir is then the model's path:
# bf16 evaluates it, quantize starts from it. Nothing of it is in git.


rule prepare_model:
    input:
        script="quantstudy/prepare/prepare_model.py",
        gguf=gguf_input,
    output:
        directory(GGUF_PREPARED_DIR),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    wildcard_constraints:
        model="|".join(map(re.escape, gguf_models())) or "(?!)",
    conda:
        "../envs/quantize.yaml"
    threads: lambda w: job_res("prepare_model", w)["threads"]
    resources:
        mem_mb=lambda w, attempt: job_res("prepare_model", w, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_res("prepare_model", w, attempt)["runtime"],
    params:
        source=gguf_source,
        check_prompt=lambda w: config["models"][w.model]["check_prompt"],
    shell:
        "$QS_PYTHON_QUANTIZE -m quantstudy.prepare.prepare_model --source {params.source:q} --output {output:q}"
        " --check-prompt {params.check_prompt:q} --threads {threads} > {log:q} 2>&1"
