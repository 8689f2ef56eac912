"""Shared by every stage: config and its schema defaults, output paths, result formats and atomic writes, the CLI runner, the engine-step supervisor and the vLLM server."""
