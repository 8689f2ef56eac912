"""Models named by hub id (the paper config): allowed only with `hub_access: true`, and
checked for reachability before any job runs, so a host without network fails at once,
naming each model, instead of hanging in a download.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_models(config: dict, workdir: str | Path = ".") -> dict[str, str]:
    """{model name: hub id} for every model whose path is not a local directory."""
    return {
        name: spec["path"]
        for name, spec in config["models"].items()
        if "gguf" not in spec and not (Path(workdir) / spec["path"]).is_dir()
    }


def endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT))
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def reachable(host: str, port: int, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unreachable_message(models: dict[str, str], host: str) -> str:
    lines = [f"the model hub ({host}) is unreachable from this host, and these models are hub ids:"]
    for name, hub_id in models.items():
        lines.append(f"  - models.{name}.path: '{hub_id}'")
    lines.append(
        "Download them where there is network (`huggingface-cli download <id> --local-dir DIR`) "
        "and set each path to its local directory."
    )
    return "\n".join(lines)


def preflight(config: dict, workdir: str | Path = ".", timeout: float = 5.0) -> str | None:
    """None when every hub model can be fetched (or there are none), else the error message."""
    models = hub_models(config, workdir)
    if not models:
        return None
    host, port = endpoint()
    if reachable(host, port, timeout):
        return None
    return unreachable_message(models, host)
