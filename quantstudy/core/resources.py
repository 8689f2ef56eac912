"""Cluster resources of a job, from config: they grow with the model and with each retry,
up to what a node of the job's GPU type has.

config.resources.<rule> gives the base for a model that fits one GPU (or the CPU);
config.models.<m>.gpus says how many GPUs the model needs (0 on CPU, 1 for 8B, 4 for
70B, 8 for 405B in the paper config), and config.models.<m>.resources.<rule> overrides
any base value for that model. Memory and runtime are multiplied by the attempt number,
so a job killed for memory or time is retried with more (profile `retries`); memory never
past gpu_types.<g>.node_mem_mb, since SLURM holds a job asking more than any node has
pending forever.

GPU-type routing (where models give params_b and GPU types memory_gb): every GPU job goes
to the first type of evaluation.gpu_types (perf: its own type) where it fits:
- serving (evaluate, generate, perf): the checkpoint's weights within the share of GPU
  memory vLLM may use, less headroom for the KV cache and activations;
- quantize: llmcompressor holds the bf16 model in host memory and onloads one layer at a
  time, so the node's RAM must hold the bf16 weights with a margin.
"""

from __future__ import annotations

DEFAULTS = {"mem_mb": 4000, "runtime": 60, "threads": 2}
GPU_RULES = ("quantize", "evaluate", "generate", "perf")
SERVE_RULES = ("evaluate", "generate", "perf")
# Share of vLLM's GPU memory the weights may take: the rest is KV cache and activations.
WEIGHT_SHARE = 0.85
# Host memory quantize needs, as a multiple of the bf16 weights (model + calibration state).
QUANTIZE_HOST_MARGIN = 1.3


def model_gpus(config: dict, model: str) -> int:
    return int(config["models"][model].get("gpus", 0))


def weights_gb(config: dict, model: str, scheme: str) -> float | None:
    """The checkpoint's weights in GB: bytes per parameter from the recipe's weight format
    (quantstudy.core.schemes.bytes_per_param; bf16: 2)."""
    from quantstudy.core.schemes import bytes_per_param, scheme_quantization

    params = config["models"][model].get("params_b")
    if params is None:
        return None
    q = scheme_quantization(config, model, scheme)
    return params * (2.0 if q is None else bytes_per_param(q))


def _gpu_memory_utilization(config: dict, rule: str) -> float:
    block = config.get("performance") if rule == "perf" else config.get("evaluation")
    return float(((block or {}).get("engine") or {}).get("gpu_memory_utilization", 0.9))


def fit_problem(config: dict, rule: str, model: str, scheme: str, gpu: str) -> str | None:
    """Why a job of `rule` on (model, scheme) does not fit GPU type `gpu`; None if it fits
    (or the config gives no sizes to tell)."""
    spec = config.get("gpu_types", {}).get(gpu, {})
    need = weights_gb(config, model, "bf16" if rule == "quantize" else scheme)
    if need is None:
        return None
    if rule == "quantize":
        host_gb = spec.get("node_mem_mb")
        if host_gb is not None and need * QUANTIZE_HOST_MARGIN > host_gb / 1000:
            return (
                f"quantizing holds the bf16 weights ({need:.0f} GB x {QUANTIZE_HOST_MARGIN}) in host memory; "
                f"a {gpu} node has {host_gb / 1000:.0f} GB"
            )
        return None
    if spec.get("memory_gb") is None:
        return None
    gpus = max(1, model_gpus(config, model))
    room = gpus * spec["memory_gb"] * _gpu_memory_utilization(config, rule) * WEIGHT_SHARE
    if need > room:
        return (
            f"{scheme} weights ({need:.0f} GB) exceed {WEIGHT_SHARE:.0%} of the usable memory of "
            f"{gpus} x {gpu} ({gpus} x {spec['memory_gb']} GB x {_gpu_memory_utilization(config, rule)} "
            f"= {room / WEIGHT_SHARE:.0f} GB)"
        )
    return None


def route(config: dict, rule: str, model: str, scheme: str) -> str | None:
    """The GPU type a (non-perf) GPU job runs on: the first of evaluation.gpu_types it fits
    (serving jobs: the first that runs the scheme's format natively, then by emulation);
    None where the config routes nothing (no evaluation.gpu_types) or nothing fits (the
    config check reports that before any job: quantstudy.core.config)."""
    if rule not in GPU_RULES or model_gpus(config, model) == 0:
        return None
    fits = [
        g
        for g in config.get("evaluation", {}).get("gpu_types", [])
        if fit_problem(config, rule, model, scheme, g) is None
    ]
    if rule in SERVE_RULES:
        # Where vLLM runs the format natively, else by emulation (e.g. FP8 as weight-only on
        # Ampere: accuracy then is the emulation's), else anywhere (lm-eval's hf backend).
        from quantstudy.core.schemes import EMULATED, NATIVE, arch_of, support

        status = {g: support(config, model, scheme, arch_of(config, g))["status"] for g in fits}
        fits = [g for g in fits if status[g] == NATIVE] or [g for g in fits if status[g] == EMULATED] or fits
    return fits[0] if fits else None


def job_resources(config: dict, rule: str, model: str, attempt: int = 1, gpu: str | None = None) -> dict:
    """{gpu, mem_mb, runtime, threads} for one job of `rule` on `model`, on GPU type `gpu`
    (its node memory caps mem_mb)."""
    base = {**DEFAULTS, **config.get("resources", {}).get(rule, {})}
    override = config["models"][model].get("resources", {}).get(rule, {})
    gpus = model_gpus(config, model) if rule in GPU_RULES else 0
    scale = max(1, gpus) if "mem_mb" not in override else 1  # an explicit override is taken as is
    spec = {**base, **override}
    mem = int(spec["mem_mb"] * scale * attempt)
    cap = config.get("gpu_types", {}).get(gpu, {}).get("node_mem_mb") if gpu else None
    return {
        "gpu": gpus,
        "mem_mb": min(mem, int(cap)) if cap else mem,
        "runtime": int(spec["runtime"] * attempt),
        "threads": int(spec["threads"]),
    }


def tensor_parallel_size(config: dict, model: str) -> int:
    """vLLM shards a model over the GPUs it is given."""
    return max(1, model_gpus(config, model))
