#!/usr/bin/env bash
# Snakemake runs this once in the new conda env (--sdm conda): quantstudy itself, editable
# from the workflow's checkout (rules/common.smk exports QUANTSTUDY_ROOT), so the rule's
# `python -m quantstudy.<stage>.<rule>` imports the same code as the local venvs.
set -euo pipefail
python -m pip install --no-deps -e "${QUANTSTUDY_ROOT:?exported by rules/common.smk}"
