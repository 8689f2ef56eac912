"""quantstudy: which quantization format to serve, and what it costs in accuracy.

Plain-Python logic of the workflow (config checks, recipes, lm-eval parsing, recovery
arithmetic). Stdlib only at import time, so every env (and Snakemake) can import it.
"""
