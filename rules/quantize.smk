# Base model -> compressed-tensors checkpoint, one job per (model, quantized scheme).
# bf16 has no job: evaluate reads the base model directory as is.


rule quantize:
    input:
        script="scripts/quantize.py",
        model=lambda w: config["models"][w.model]["path"],
        calibration=lambda w: calibration_file(w.model, w.scheme) or [],
    output:
        directory(QUANTIZED_MODEL),
    wildcard_constraints:
        scheme="|".join(map(re.escape, QUANTIZED)),
    params:
        # The whole effective recipe: editing one scheme's recipe reruns that branch only.
        recipe=lambda w: json.dumps(recipe(w.model, w.scheme), sort_keys=True),
        calibration=lambda w, input: (
            f"--calibration {shlex.quote(input.calibration)}" if input.calibration else ""
        ),
    log:
        "results/logs/quantize/{model}/{scheme}.log",
    benchmark:
        "results/benchmarks/quantize/{model}/{scheme}.tsv"
    conda:
        "../envs/quantize.yaml"
    threads: res("quantize", "threads", 2)
    resources:
        mem_mb=res("quantize", "mem_mb", 4000),
        runtime=res("quantize", "runtime", 60),
    shell:
        "$QS_PYTHON_QUANTIZE {input.script:q} --model-dir {input.model:q} --scheme {wildcards.scheme:q}"
        " --recipe {params.recipe:q} {params.calibration} --output {output:q} --threads {threads}"
        " > {log:q} 2>&1"
