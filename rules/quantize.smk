# Base model -> compressed-tensors checkpoint, one job per (model, quantized scheme).
# bf16 has no job: evaluate reads the base model directory as is.


rule quantize:
    input:
        script="quantstudy/quantize/quantize.py",
        model=lambda w: base_model_input(w.model),
        calibration=lambda w: calibration_file(w.model, w.scheme) or [],
    output:
        directory(QUANTIZED_MODEL),
    log:
        "results/logs/quantize/{model}/{scheme}.log",
    benchmark:
        "results/benchmarks/quantize/{model}/{scheme}.tsv"
    wildcard_constraints:
        scheme="|".join(map(re.escape, QUANTIZED)),
    conda:
        "../envs/quantize.yaml"
    threads: lambda w: job_res("quantize", w)["threads"]
    resources:
        gpu=lambda w: job_res("quantize", w)["gpu"],
        mem_mb=lambda w, attempt: job_res("quantize", w, attempt)["mem_mb"],
        runtime=lambda w, attempt: job_res("quantize", w, attempt)["runtime"],
        slurm_partition=gpu_type_resource("quantize", "slurm_partition"),
        constraint=gpu_type_resource("quantize", "constraint"),
    params:
        base=lambda w: config["models"][w.model]["path"],
        # The whole effective recipe: editing one scheme's recipe reruns that branch only.
        recipe=lambda w: json.dumps(recipe(w.model, w.scheme), sort_keys=True),
        calibration_set=lambda w: json.dumps(calibration_set(w.model, w.scheme), sort_keys=True),
    shell:
        "$QS_PYTHON_QUANTIZE -m quantstudy.quantize.quantize --model-dir {params.base:q} --scheme {wildcards.scheme:q}"
        " --recipe {params.recipe:q} --calibration-set {params.calibration_set:q} --output {output:q} --threads {threads}"
        " > {log:q} 2>&1"
