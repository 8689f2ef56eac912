# Eval JSONs -> summary.csv / summary.md (scores, stderrs, recovery vs bf16 with paired-
# bootstrap intervals from the per-item samples, suites, leaderboard-v2 normalization),
# + similarity JSONs (text drift, KL, flips vs bf16) when the stage is configured.


localrules:
    summary,


rule summary:
    input:
        evals=expand(EVAL_JSON, model=MODELS, scheme=SCHEMES, task=TASKS),
        # Per-item samples: paired-bootstrap intervals of every recovery.
        samples=expand(EVAL_SAMPLES, model=MODELS, scheme=SCHEMES, task=TASKS),
        similarity=similarity_outputs(),
        script="quantstudy/summary/summary.py",
    output:
        csv=report(SUMMARY_CSV, caption="../report/summary_csv.rst", category="4. Data"),
        md=SUMMARY_MD,
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        skipped=json.dumps(config.get("skipped_tasks", {}), sort_keys=True),
        significance=json.dumps(config["significance"], sort_keys=True),
        normalize=json.dumps(
            {t: s["normalize"] for t, s in config["tasks"].items() if s.get("normalize")},
            sort_keys=True,
        ),
        schemes=json.dumps(SCHEMES),
    shell:
        "$QS_PYTHON_ANALYSIS -m quantstudy.summary.summary {input.evals:q} --csv {output.csv:q} --md {output.md:q}"
        " --similarity {input.similarity:q} --skipped {params.skipped:q}"
        " --samples {input.samples:q} --normalize {params.normalize:q}"
        " --significance {params.significance:q} --schemes {params.schemes:q}"
        " > {log:q} 2>&1"
