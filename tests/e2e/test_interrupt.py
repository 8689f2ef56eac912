"""Ctrl-C as a person presses it: in a real terminal (tmux), to the foreground process
group, during each engine step. Everything stops, no vLLM process is left, the port is
free, and a rerun gives the results an uninterrupted run gave.

tmux is Debian's (tests/terminal/install-tmux.sh installs it if missing). Each case works on
its own copy of the finished study, with the one output it interrupts removed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantstudy.core.server import port_is_free

from .conftest import Workflow, wait_for
from .procs import engine_started, has_mapped, processes_in, python_running, served_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tmux():
    if not shutil.which("tmux"):
        subprocess.run(["bash", str(ROOT / "tests/terminal/install-tmux.sh")], check=True, timeout=900)
    return shutil.which("tmux")


def _started(script: str, engine: str):
    """The explicit event after which the step is mid-work."""

    def check(wf: Workflow) -> bool:
        workers = python_running(wf.dir, script)
        if not workers:
            return False
        if engine == "torch":  # quantize: llmcompressor computes in the worker itself
            return has_mapped(workers[0], "libtorch_cpu")
        if engine == "engine":  # evaluate/generate: vLLM's engine is up
            return engine_started(workers[0])
        port = served_port(wf.dir)  # perf: the server listens, the benchmark is under way
        return port is not None and not port_is_free(port)

    return check


CASES = {
    "quantize": ("results/models/tiny-llama/w4a16-int", "quantstudy.quantize.quantize", "torch"),
    "evaluate": ("results/eval/tiny-llama/w8a8-int/count_letter.json", "quantstudy.evaluate.evaluate", "engine"),
    "generate": ("results/generations/tiny-llama/w4a16-int.jsonl", "quantstudy.generate.generate", "engine"),
    "perf": ("results/perf/tiny-llama/w8a8-int/cpu", "quantstudy.perf.perf", "server"),
}


def _same_result(rule: str, before: Path, after: Path) -> None:
    if rule == "quantize":
        for name in ("config.json", "recipe.yaml"):
            assert (after / name).read_text() == (before / name).read_text(), name
        for st in before.glob("*.safetensors"):
            assert (after / st.name).read_bytes() == st.read_bytes(), f"{st.name} differs from the uninterrupted run"
    elif rule == "evaluate":
        a, b = json.loads(after.read_text()), json.loads(before.read_text())
        assert a["metrics"] == b["metrics"] and a["n_samples"] == b["n_samples"]
    elif rule == "generate":
        texts = [[json.loads(line)["text"] for line in p.read_text().splitlines()] for p in (before, after)]
        assert texts[0] == texts[1]
    else:  # timings differ run to run; the points run must not
        runs = [
            [
                (r["use_case"], r["mode"], r["rate_fraction"] is None, r["repeat"])
                for r in json.loads((p / "manifest.json").read_text())["runs"]
            ]
            for p in (before, after)
        ]
        assert runs[0] == runs[1]


@pytest.mark.parametrize("rule", list(CASES))
def test_ctrl_c_in_a_terminal_stops_everything_and_a_rerun_completes(rule, study, tmp_path, tmux):
    target, script, engine = CASES[rule]
    study.need(target)
    wf = study.copy(tmp_path / "wf")
    out = wf.path(target)
    (shutil.rmtree if out.is_dir() else Path.unlink)(out)
    exit_file = tmp_path / "exit"
    session = f"qs-{rule}-{tmp_path.name}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in wf.env.items() if k in ("QUANTSTUDY_VENVS", "HF_TOKEN"))
    cmd = (
        f"cd {shlex.quote(str(wf.dir))} && env {env} {shlex.quote(sys.executable)} -m snakemake --cores 2 "
        f"{shlex.quote(target)}; echo $? > {shlex.quote(str(exit_file))}"
    )
    subprocess.run([tmux, "new-session", "-d", "-s", session, "-x", "200", "-y", "50", cmd], check=True)
    try:
        wait_for(lambda: _started(script, engine)(wf) or exit_file.exists(), 600, f"{rule} to be mid-work")
        assert not exit_file.exists(), f"the {rule} job ended before it could be interrupted"
        port = served_port(wf.dir) if rule == "perf" else None
        subprocess.run([tmux, "send-keys", "-t", session, "C-c"], check=True)
        wait_for(exit_file.exists, 300, "snakemake to exit after Ctrl-C")
        screen = subprocess.run(
            [tmux, "capture-pane", "-p", "-t", session, "-S", "-200"], capture_output=True, text=True
        ).stdout
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], capture_output=True)
    assert int(exit_file.read_text()) != 0, screen
    wait_for(lambda: not processes_in(wf.dir), 120, f"every process of the run to exit: {processes_in(wf.dir)}")
    if port:
        wait_for(lambda: port_is_free(port), 30, f"port {port} to be free")
    assert not out.exists(), f"an interrupted {rule} left an output that looks finished"
    rerun = wf.snakemake("--cores", "2", target)
    assert rule in rerun.stdout + rerun.stderr  # the interrupted job is redone
    _same_result(rule, study.path(target), out)
    assert not processes_in(wf.dir)
