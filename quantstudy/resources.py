"""Cluster resources of a job, from config: they grow with the model and with each retry.

config.resources.<rule> gives the base for a model that fits one GPU (or the CPU);
config.models.<m>.gpus says how many GPUs the model needs (0 on CPU, 1 for 8B, 4 for
70B, 8 for 405B in the paper config), and config.models.<m>.resources.<rule> overrides
any base value for that model. Memory and runtime are multiplied by the attempt number,
so a job killed for memory or time is retried with more (profile `retries`).
"""

from __future__ import annotations

DEFAULTS = {"mem_mb": 4000, "runtime": 60, "threads": 2}
GPU_RULES = ("quantize", "evaluate", "generate", "perf")


def model_gpus(config: dict, model: str) -> int:
    return int(config["models"][model].get("gpus", 0))


def job_resources(config: dict, rule: str, model: str, attempt: int = 1) -> dict:
    """{gpu, mem_mb, runtime, threads} for one job of `rule` on `model`."""
    base = {**DEFAULTS, **config.get("resources", {}).get(rule, {})}
    override = config["models"][model].get("resources", {}).get(rule, {})
    gpus = model_gpus(config, model) if rule in GPU_RULES else 0
    scale = max(1, gpus) if "mem_mb" not in override else 1  # an explicit override is taken as is
    spec = {**base, **override}
    return {
        "gpu": gpus,
        "mem_mb": int(spec["mem_mb"] * scale * attempt),
        "runtime": int(spec["runtime"] * attempt),
        "threads": int(spec["threads"]),
    }


def tensor_parallel_size(config: dict, model: str) -> int:
    """vLLM shards a model over the GPUs it is given."""
    return max(1, model_gpus(config, model))
