"""Process set-up shared by the step scripts."""

from __future__ import annotations

import importlib.metadata
import os

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def offline_env(extra: dict | None = None) -> None:
    """Jobs never reach the network: models, tokenizers and datasets come from local paths.

    Except with `hub_access: true` in config (cluster runs of hub models), which the
    workflow passes down as QS_HUB_ACCESS=1.
    """
    if os.environ.get("QS_HUB_ACCESS") != "1":
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
