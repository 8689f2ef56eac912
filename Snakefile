# quantstudy: which quantization format to serve, and what it costs in accuracy.
# base model -> quantize (per scheme) -> evaluate (per task) -> summary;
# generate (per scheme) -> similarity to bf16 (+ KL, flips) -> summary;
# perf (vLLM server per scheme x GPU type) -> perf.csv -> cost.csv -> guideline (+ summary).
# Config: config/config.yaml (embedded fixture study); see README for your own models.
# Report: `snakemake --report results/report.html` after a run (rules/report.smk).

from snakemake.utils import min_version

min_version("9.0")


report: "report/workflow.rst"


# The embedded default, unless the user names their own with --configfile (which then
# replaces it rather than being merged over the fixture study).
if not workflow.config_settings.configfiles:
    # Read it first ourselves: Snakemake's reader names neither file nor line of a YAML
    # error, and keeps the last of two equal keys without a word.
    from quantstudy.core.configload import read_config_file, workdir_note
    from quantstudy.core.config import ConfigError
    from snakemake.exceptions import WorkflowError

    try:
        read_config_file("config/config.yaml")
    except ConfigError as e:
        raise WorkflowError("\n  - ".join(["invalid config:", str(e)] + [workdir_note(workflow.basedir) or ""]))

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/prepare.smk"
include: "rules/quantize.smk"
include: "rules/evaluate.smk"
include: "rules/generate.smk"
include: "rules/similarity.smk"
include: "rules/summary.smk"
include: "rules/perf.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        SUMMARY_CSV,
        SUMMARY_MD,
        similarity_outputs(),
        performance_outputs(),
        paths.REPORT_OUTPUTS,
