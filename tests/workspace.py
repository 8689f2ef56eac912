"""A throwaway copy of the workflow (for tests and benchmarks): same code, own results/."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = [
    "Snakefile",
    "pyproject.toml",
    "rules",
    "report",
    "envs",
    "config",
    "quantstudy",
    "tools",
    "tests",
    "fixtures",
    "data",
    "profiles",
    "slurm",
]


def copy_workflow(dest: str | Path) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / part)
    return dest
