"""Stage quantize (rules/quantize.smk): one model, one recipe, one compressed-tensors checkpoint (llmcompressor)."""
