"""Stage prepare (rules/prepare.smk): a GGUF model becomes a bf16 safetensors checkpoint."""
