"""Process set-up shared by the step scripts."""

from __future__ import annotations

import importlib.metadata
import os

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def cache_env(cache: str) -> dict:
    """Where the libraries look for what `python -m quantstudy.stage` put in the offline cache."""
    hf = os.path.join(cache, "hf")
    return {
        "HF_HOME": hf,
        "HF_HUB_CACHE": os.path.join(hf, "hub"),
        "HF_DATASETS_CACHE": os.path.join(hf, "datasets"),
        "HF_MODULES_CACHE": os.path.join(hf, "modules"),
        "NLTK_DATA": os.path.join(cache, "nltk_data"),
        "HF_EVALUATE_OFFLINE": "1",
    }


def offline_env(extra: dict | None = None) -> None:
    """Jobs never reach the network: models, tokenizers and datasets come from local paths,
    or from the offline cache the workflow names in QS_OFFLINE_CACHE (config offline_cache,
    staged by quantstudy.stage and checked before any job).

    Without a cache, `hub_access: true` (QS_HUB_ACCESS=1) lets jobs download.
    """
    cache = os.environ.get("QS_OFFLINE_CACHE")
    if cache:
        os.environ.update({**cache_env(cache), **OFFLINE})
    elif os.environ.get("QS_HUB_ACCESS") != "1":
        os.environ.update(OFFLINE)
    os.environ.update(extra or {})


def package_versions(names) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def add_checkpoint_args(ap) -> None:
    """The arguments every engine step shares: which checkpoint, named how."""
    ap.add_argument("--model-dir", required=True, help="checkpoint directory (bf16 base or quantized)")
    ap.add_argument("--model", required=True, help="model name (config key)")
    ap.add_argument("--scheme", required=True)


def hardware_description() -> str:
    """What the benchmarks ran on, for tables and figure captions: GPU names, else the CPU."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            names = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
            ).stdout.split("\n")
            names = [n.strip() for n in names if n.strip()]
            if names:
                return f"{len(names)}x {names[0]}" if len(set(names)) == 1 else ", ".join(names)
        except (OSError, subprocess.SubprocessError):
            pass
    model = platform_cpu()
    return f"{model}, {len(os.sched_getaffinity(0))} cores (CPU, no GPU)"


def platform_cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def checkpoint_error(model_dir: str, scheme: str) -> str | None:
    """Why a checkpoint cannot be served (named before any engine starts), or None.

    A hub id (with hub access, no local directory) is fetched by the engine: not checked.
    """
    from pathlib import Path

    from quantstudy.core.checkpoint import CheckpointError, check_checkpoint

    if not Path(model_dir).exists() and os.environ.get("QS_HUB_ACCESS"):
        return None
    try:
        check_checkpoint(model_dir, quantized=scheme != "bf16")
    except CheckpointError as e:
        return str(e)
    return None


# Snakemake exports these as the job's thread count. vLLM's CPU backend binds its own
# OpenMP threads to cores; with these set on top, its processes oversubscribe the cores and
# every decode step waits on preempted threads (measured: 60x slower serving on 2 cores).
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def engine_threads_env() -> None:
    """Leave thread counts of vLLM engine processes to vLLM (call before it starts)."""
    for var in THREAD_VARS:
        os.environ.pop(var, None)
