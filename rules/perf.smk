# Serving benchmarks: one vLLM server per (model, scheme, GPU type) answers every use case,
# synchronously and asynchronously (quantstudy/perf/perf.py); then perf.csv, queries per dollar
# (cost.csv) and the deployment guideline (guideline.md/.csv) from this run's numbers.


if PERFORMANCE:

    localrules:
        perf_table,
        cost,
        guideline,

    rule perf:
        input:
            script="quantstudy/perf/perf.py",
            model=lambda w: checkpoint_input(w.model, w.scheme),
        output:
            directory(PERF_DIR),
        log:
            main="results/logs/perf/{model}/{scheme}/{gpu}.log",
            server="results/logs/perf/{model}/{scheme}/{gpu}.server.log",
        benchmark:
            "results/benchmarks/perf/{model}/{scheme}/{gpu}.tsv"
        conda:
            "../envs/serve.yaml"
        threads: perf_threads
        resources:
            gpu=lambda w: job_res("perf", w)["gpu"],
            mem_mb=lambda w, attempt: job_res("perf", w, attempt)["mem_mb"],
            runtime=lambda w, attempt: job_res("perf", w, attempt)["runtime"],
            slurm_partition=gpu_type_resource("perf", "slurm_partition"),
            constraint=gpu_type_resource("perf", "constraint"),
        params:
            model_dir=lambda w: model_dir(w.model, w.scheme),
            use_cases=json.dumps(PERFORMANCE["use_cases"], sort_keys=True),
            settings=lambda w: perf_settings(w.model),
        shell:
            "$QS_PYTHON_SERVE -m quantstudy.perf.perf --model-dir {params.model_dir:q} --model {wildcards.model:q}"
            " --scheme {wildcards.scheme:q} --gpu {wildcards.gpu:q} --use-cases {params.use_cases:q}"
            " --settings {params.settings:q} --output {output:q} --server-log {log.server:q}"
            " > {log.main:q} 2>&1"

    rule perf_table:
        input:
            script="quantstudy/perf/perf_table.py",
            perf=perf_dirs(),
        output:
            csv=report(PERF_CSV, caption="../report/perf_csv.rst", category="4. Data"),
            sweep=PERF_SWEEP_CSV,
        log:
            "results/logs/perf_table.log",
        conda:
            "../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            support=support_table(),
            schemes=json.dumps(SCHEMES),
        shell:
            "$QS_PYTHON_ANALYSIS -m quantstudy.perf.perf_table {input.perf:q} --csv {output.csv:q}"
            " --sweep-csv {output.sweep:q} --support {params.support:q} --schemes {params.schemes:q}"
            " > {log:q} 2>&1"

    rule cost:
        input:
            script="quantstudy/perf/cost.py",
            perf=PERF_CSV,
        output:
            report(COST_CSV, caption="../report/cost_csv.rst", category="4. Data"),
        log:
            "results/logs/cost.log",
        conda:
            "../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            gpu_types=json.dumps(config["gpu_types"], sort_keys=True),
            model_gpus=json.dumps({m: model_gpus(config, m) for m in MODELS}, sort_keys=True),
        shell:
            "$QS_PYTHON_ANALYSIS -m quantstudy.perf.cost {input.perf:q} --gpu-types {params.gpu_types:q}"
            " --model-gpus {params.model_gpus:q} --output {output:q} > {log:q} 2>&1"

    rule guideline:
        input:
            script="quantstudy/perf/guideline.py",
            cost=COST_CSV,
            summary=SUMMARY_CSV,
            perf=PERF_CSV,
        output:
            csv=report(GUIDELINE_CSV, caption="../report/guideline_csv.rst", category="4. Data"),
            md=GUIDELINE_MD,
        log:
            "results/logs/guideline.log",
        conda:
            "../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            floor=config["guideline"]["recovery_floor_pct"],
            suites=json.dumps(config.get("guideline", {}).get("suites", [])),
            support=support_table(),
            schemes=json.dumps(SCHEMES),
        shell:
            "$QS_PYTHON_ANALYSIS -m quantstudy.perf.guideline --cost {input.cost:q} --summary {input.summary:q}"
            " --perf {input.perf:q} --floor {params.floor} --suites {params.suites:q} --support {params.support:q}"
            " --csv {output.csv:q} --md {output.md:q} --schemes {params.schemes:q} > {log:q} 2>&1"
