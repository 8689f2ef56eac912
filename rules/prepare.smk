# GGUF file -> bf16 safetensors checkpoint at models/{model}, for models whose config names
# `gguf:` (quantstudy/gguf.py, quantstudy/prepare.py). That dir is then the model's path:
# bf16 evaluates it, quantize starts from it. Nothing of it is in git.


def gguf_models():
    return [m for m in MODELS if "gguf" in config["models"][m]]


def gguf_input(w):
    """The GGUF file as an input where it is found here (a package's file under conda is
    looked up by the job itself)."""
    spec = config["models"][w.model]["gguf"]
    src = gguf_source_path(spec, quantize_site_dirs() or [], Path("."))
    return [str(src)] if src else []


def gguf_args(w):
    spec = config["models"][w.model]["gguf"]
    if "path" in spec:
        return f"--gguf {shlex.quote(spec['path'])}"
    return f"--package {shlex.quote(spec['package'])} --file {shlex.quote(spec['file'])}"


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
