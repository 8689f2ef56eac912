# Figures and HTML tables for `snakemake --report results/report.html` (report/workflow.rst).
# Inputs: summary.csv (rules/summary.smk), and perf.csv, cost.csv, guideline.md (rules/perf.smk)
# when the config has a `performance:` block (without it, those figures say there is no data).

from quantstudy.report import plots


localrules:
    figures,
    report_tables,


rule figures:
    input:
        summary=SUMMARY_CSV,
        perf=[PERF_CSV] if PERFORMANCE else [],
        cost=[COST_CSV] if PERFORMANCE else [],
        sweep=[PERF_SWEEP_CSV] if PERFORMANCE else [],
        script="quantstudy/report/figures.py",
    output:
        recovery=report(
            paths.FIGURE_RECOVERY,
            caption="../report/recovery.rst",
            category="1. Accuracy",
            subcategory="Recovery vs bf16",
            labels={"item": "recovery figure: per task and suite"},
        ),
        similarity=report(
            paths.FIGURE_SIMILARITY,
            caption="../report/similarity_figure.rst",
            category="1. Accuracy",
            subcategory="Similarity to bf16",
            labels={"item": "similarity figure: answers vs bf16's"},
        ),
        throughput=report(
            paths.FIGURE_THROUGHPUT,
            caption="../report/throughput.rst",
            category="2. Accuracy vs performance",
            subcategory="Throughput and cost",
            labels=plots.report_labels("accuracy vs throughput"),
        ),
        cost=report(
            paths.FIGURE_COST,
            caption="../report/cost.rst",
            category="2. Accuracy vs performance",
            subcategory="Throughput and cost",
            labels=plots.report_labels("accuracy vs queries per dollar"),
        ),
        slo=report(
            paths.FIGURE_SLO,
            caption="../report/slo.rst",
            category="2. Accuracy vs performance",
            subcategory="Throughput and cost",
            labels=plots.report_labels("latency vs request rate within the SLO"),
        ),
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        schemes=json.dumps(SCHEMES),
    shell:
        "$QS_PYTHON_ANALYSIS -m quantstudy.report.figures --summary {input.summary:q}"
        " --perf {input.perf:q} --cost {input.cost:q} --sweep {input.sweep:q} --slo-figure {output.slo:q}"
        " --recovery {output.recovery:q} --similarity {output.similarity:q}"
        " --throughput {output.throughput:q}"
        " --cost-figure {output.cost:q} --schemes {params.schemes:q} > {log:q} 2>&1"


rule report_tables:
    input:
        summary=SUMMARY_CSV,
        guideline=[GUIDELINE_MD] if PERFORMANCE else [],
        script="quantstudy/report/report_tables.py",
    output:
        recovery=report(
            paths.TABLE_RECOVERY,
            caption="../report/recovery_table.rst",
            category="1. Accuracy",
            subcategory="Recovery vs bf16",
            labels={"item": "recovery table: scores with standard errors"},
        ),
        similarity=report(
            paths.TABLE_SIMILARITY,
            caption="../report/similarity.rst",
            category="1. Accuracy",
            subcategory="Similarity to bf16",
            labels={"item": "similarity table: text similarity, KL, flips"},
        ),
        guideline=report(
            paths.TABLE_GUIDELINE,
            caption="../report/guideline.rst",
            category="3. Deployment guideline",
            labels={"item": "guideline: recommended scheme"},
        ),
    log:
        "results/logs/report_tables.log",
    benchmark:
        "results/benchmarks/report_tables.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        schemes=json.dumps(SCHEMES),
    shell:
        "$QS_PYTHON_ANALYSIS -m quantstudy.report.report_tables --summary {input.summary:q}"
        " --guideline {input.guideline:q}"
        " --recovery {output.recovery:q} --similarity {output.similarity:q}"
        " --guideline-html {output.guideline:q} --schemes {params.schemes:q} > {log:q} 2>&1"
