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
