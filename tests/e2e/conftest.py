"""A throwaway copy of the workflow in which real Snakemake runs the real tools.

The copy shares the repository's venvs (QUANTSTUDY_VENVS) but has its own results/,
so tests never touch a user's results.
"""

from __future__ import annotations

import os
import time
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from quantstudy.workspace import ROOT, copy_workflow


class Workflow:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.env = {**os.environ, "QUANTSTUDY_VENVS": os.environ.get("QUANTSTUDY_VENVS", str(ROOT / ".venv")),
                    # A secret that must never be written to results, logs or reports.
                    "HF_TOKEN": "hf_quantstudyTestSecret0123456789"}

    def snakemake(self, *args, check=True, timeout=3600) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", *args]
        p = subprocess.run(cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-8000:]}")
        return p

    def path(self, rel: str) -> Path:
        return self.dir / rel

    @property
    def config(self) -> dict:
        """The copy's config as it is now (some tests edit it)."""
        return yaml.safe_load(self.path("config/config.yaml").read_text())


# CI-sized serving benchmarks: two of the default's seven use cases, two repeats, fewer
# requests. Every stage still runs for real; the full default runs with `make study`.
CI_PERFORMANCE = {"use_cases": ["rag", "multi-turn-chat"], "repeats": 2, "requests": 24, "sync_requests": 3}


def ci_sized(wf: Workflow) -> Workflow:
    cfg = wf.config
    perf = cfg["performance"]
    perf["use_cases"] = {name: {**perf["use_cases"][name], "requests": CI_PERFORMANCE["requests"],
                                "sync_requests": CI_PERFORMANCE["sync_requests"]}
                         for name in CI_PERFORMANCE["use_cases"]}
    perf["repeats"] = CI_PERFORMANCE["repeats"]
    wf.path("config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return wf


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Workflow:
    """The default study, run once end to end: real quantization, real lm-eval on vLLM."""
    reuse = os.environ.get("QS_TEST_REUSE_STUDY")
    if reuse:  # debugging aid: a copy of a finished study dir instead of a fresh run
        import shutil

        wf = Workflow(Path(shutil.copytree(reuse, tmp_path_factory.mktemp("study") / "wf", symlinks=True)))
        wf.first_run = None
        return wf
    wf = ci_sized(Workflow(copy_workflow(tmp_path_factory.mktemp("study"))))
    wf.first_run = wf.snakemake("--cores", "2")
    return wf


def wait_for(cond, timeout, what, poll=0.05):
    """Poll `cond` until true; fail naming `what` after `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
