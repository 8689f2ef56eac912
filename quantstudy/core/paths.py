"""Every output path pattern of the workflow, in one place (rules and scripts import these)."""

RESULTS = "results"

# A quantized checkpoint (compressed-tensors). bf16 has none: it is the base model itself.
QUANTIZED_MODEL = RESULTS + "/models/{model}/{scheme}"
# One lm-eval run of one task on one (model, scheme); per-item samples beside it.
EVAL_JSON = RESULTS + "/eval/{model}/{scheme}/{task}.json"
EVAL_SAMPLES = RESULTS + "/eval/{model}/{scheme}/{task}.samples.jsonl"
# Greedy answers of one (model, scheme) to the configured prompt set; the teacher-forced
# top-k logprobs over bf16's answers; settings + versions (written last).
GENERATIONS = RESULTS + "/generations/{model}/{scheme}.jsonl"
GENERATION_LOGPROBS = RESULTS + "/generations/{model}/{scheme}.logprobs.jsonl"
GENERATION_META = RESULTS + "/generations/{model}/{scheme}.meta.json"
# One scheme's text similarity, KL divergence and correctness flips relative to bf16.
SIMILARITY_JSON = RESULTS + "/similarity/{model}/{scheme}.json"
SUMMARY_CSV = RESULTS + "/summary.csv"
SUMMARY_MD = RESULTS + "/summary.md"

# Logs and benchmark TSVs: results/logs/<rule>/..., results/benchmarks/<rule>/...
# (written as literals in each rule, as `snakemake --lint` asks).

# Performance: one vLLM server per (model, scheme, gpu) benchmarks every use case; the raw
# `vllm bench serve` JSONs + a manifest land in this directory.
PERF_DIR = RESULTS + "/perf/{model}/{scheme}/{gpu}"
# One row per (model, scheme, gpu, use_case, mode): sync = max concurrency 1; async = the
# saturated point of the request-rate sweep. Every sweep point is in PERF_SWEEP_CSV.
PERF_CSV = RESULTS + "/perf.csv"
PERF_SWEEP_CSV = RESULTS + "/perf_sweep.csv"
# Queries per dollar and cost reduction relative to bf16, per perf.csv row.
COST_CSV = RESULTS + "/cost.csv"
# The deployment guideline: recommended scheme per (model, gpu, mode, use case).
GUIDELINE_CSV = RESULTS + "/guideline.csv"
GUIDELINE_MD = RESULTS + "/guideline.md"
# Figures for the report (snakemake --report).
FIGURES_DIR = RESULTS + "/figures"
FIGURE_RECOVERY = FIGURES_DIR + "/recovery.svg"
FIGURE_SIMILARITY = FIGURES_DIR + "/similarity.svg"
FIGURE_THROUGHPUT = FIGURES_DIR + "/accuracy_vs_throughput.svg"
FIGURE_COST = FIGURES_DIR + "/accuracy_vs_cost.svg"
FIGURE_SLO = FIGURES_DIR + "/slo_latency.svg"
# The report's tables as self-contained HTML pages (the report shows HTML in a frame).
TABLES_DIR = RESULTS + "/tables"
TABLE_RECOVERY = TABLES_DIR + "/recovery.html"
TABLE_SIMILARITY = TABLES_DIR + "/similarity.html"
TABLE_GUIDELINE = TABLES_DIR + "/guideline.html"
# Everything the report shows (rule all asks for it, so a plain run can be reported).
REPORT_OUTPUTS = [
    FIGURE_RECOVERY,
    FIGURE_SIMILARITY,
    FIGURE_THROUGHPUT,
    FIGURE_COST,
    FIGURE_SLO,
    TABLE_RECOVERY,
    TABLE_SIMILARITY,
    TABLE_GUIDELINE,
]
# `snakemake --report` writes it here by convention (docs/running.md).
REPORT_HTML = RESULTS + "/report.html"
