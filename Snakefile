# quantstudy: which quantization format to serve, and what it costs in accuracy.
# base model -> quantize (per scheme) -> evaluate (per task) -> summary.
# Config: config/config.yaml (embedded fixture study); see README for your own models.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/quantize.smk"
include: "rules/evaluate.smk"
include: "rules/summary.smk"


rule all:
    default_target: True
    input:
        SUMMARY_CSV,
        SUMMARY_MD,
