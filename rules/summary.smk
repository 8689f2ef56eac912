# Eval JSONs -> summary.csv / summary.md (scores, stderrs, recovery vs bf16, suites).


localrules:
    summary,


rule summary:
    input:
        evals=expand(EVAL_JSON, model=MODELS, scheme=SCHEMES, task=TASKS),
        script="scripts/summarize.py",
    output:
        csv=SUMMARY_CSV,
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
    shell:
        "$QS_PYTHON_ANALYSIS {input.script:q} {input.evals:q} --csv {output.csv:q} --md {output.md:q}"
        " > {log:q} 2>&1"
