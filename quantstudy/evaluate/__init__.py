"""Stage evaluate (rules/evaluate.smk): one lm-eval task on one checkpoint (vLLM backend)."""
