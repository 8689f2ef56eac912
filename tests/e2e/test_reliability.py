"""Bad input, killed jobs, corrupted files and concurrent runs lose nothing (real tools)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml

from tests.workspace import copy_workflow

from .conftest import Workflow, wait_for
from .procs import engine_started, python_running

EVAL = "results/eval/tiny-llama/{scheme}/{task}.json"


def dump(wf: Workflow, name: str, cfg: dict) -> str:
    path = wf.path(f"config/{name}.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return f"config/{name}.yaml"


@pytest.fixture
def fresh(tmp_path) -> Workflow:
    return Workflow(copy_workflow(tmp_path / "wf"))


def _set(cfg, dotted, value):
    *head, last = dotted.split(".")
    node = cfg
    for k in head:
        node = node[int(k)] if isinstance(node, list) else node[k]
    node[last] = value


BAD_CONFIGS = [
    # (config change, words the error must contain)
    (lambda c: c["schemes"].append("w8a8-int8"), ["schemes", "w8a8-int8"]),
    (
        lambda c: _set(c, "tasks.count_letter.lm_eval_task", "qs_count_leter"),
        ["tasks.count_letter.lm_eval_task", "qs_count_leter"],
    ),
    (
        lambda c: _set(c, "recipes.w8a8-int.calibration.num_samples", -1),
        ["recipes.w8a8-int.calibration.num_samples", "-1"],
    ),
    (
        lambda c: _set(c, "recipes.w4a16-int.modifiers.0.GPTQModifier.config_groups.group_0.weights.group_size", 96),
        ["recipes.w4a16-int.modifiers", "group_size 96 does not divide"],
    ),
    (
        lambda c: _set(c, "calibration_sets.fixture-chat.path", "data/calibration/missing.jsonl"),
        ["calibration_sets.fixture-chat.path", "missing.jsonl"],
    ),
    (
        lambda c: _set(c, "models.tiny-llama.path", "fixtures/no-such-model"),
        ["models.tiny-llama.path", "fixtures/no-such-model"],
    ),
    (
        lambda c: _set(c, "models.tiny-llama.path", "meta-llama/Llama-3.1-8B-Instruct"),
        ["models.tiny-llama.path", "meta-llama/Llama-3.1-8B-Instruct", "hub id"],
    ),
    (
        lambda c: c["models"].update({'my model"; touch PWNED;': c["models"]["tiny-llama"]}),
        ["models", 'my model"; touch PWNED;'],
    ),
]


def test_bad_config_fails_before_any_job(fresh):
    base = yaml.safe_load(fresh.path("config/config.yaml").read_text())
    for i, (mutate, words) in enumerate(BAD_CONFIGS):
        cfg = json.loads(json.dumps(base))
        mutate(cfg)
        p = fresh.snakemake("--cores", "1", "--configfile", dump(fresh, f"bad{i}", cfg), check=False)
        out = p.stdout + p.stderr
        assert p.returncode != 0, (words, out[-2000:])
        for w in words:
            assert w in out, (w, out[-3000:])
        assert not fresh.path("results").exists(), "a job ran despite the bad config"
        assert not fresh.path("PWNED").exists()


def test_paths_with_spaces_quotes_and_semicolons_cannot_inject(fresh):
    odd = 'fixtures/it\'s a "model"; touch PWNED'
    shutil.copytree(fresh.path("fixtures/tiny-llama"), fresh.path(odd))
    cfg = yaml.safe_load(fresh.path("config/config.yaml").read_text())
    cfg["models"]["tiny-llama"]["path"] = odd
    # Targets before --configfile: it takes several values.
    fresh.snakemake("--cores", "2", "results/models/tiny-llama/w8a8-fp", "--configfile", dump(fresh, "odd", cfg))
    meta = json.loads(fresh.path("results/models/tiny-llama/w8a8-fp/quantstudy.json").read_text())
    assert meta["base_model"] == odd
    assert not fresh.path("PWNED").exists() and not fresh.path("fixtures/PWNED").exists()


def _start(wf: Workflow, *targets) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", *targets],
        cwd=wf.dir,
        env=wf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and its whole job tree (the harshest case: nothing can clean up)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _freeze_then_kill(proc: subprocess.Popen, wf: Workflow, script: str, target: str) -> None:
    """SIGSTOP the whole run, so nothing moves while we look: the step must still be running
    and its output absent (else the kill would test nothing); then SIGKILL it all."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        assert python_running(wf.dir, script), f"{script} had already exited: nothing was killed mid-step"
        assert not wf.path(target).exists(), f"{target} was already finished: nothing was killed mid-step"
    finally:
        _kill_group(proc)


def _recover(wf: Workflow) -> None:
    # A SIGKILLed Snakemake cannot release its lock; `--unlock` is the documented recovery.
    wf.snakemake("--unlock")


def _group_gone(pgid: int) -> bool:
    out = subprocess.run(["ps", "-eo", "pgid="], capture_output=True, text=True).stdout
    return str(pgid) not in out.split()


def test_sigkill_during_quantize_leaves_nothing_that_looks_done(fresh, study):
    target = "results/models/tiny-llama/w8a8-int"
    study.need(target)
    proc = _start(fresh, target)
    # The explicit event: the quantize step's own python process exists (from /proc).
    wait_for(lambda: python_running(fresh.dir, "quantstudy.quantize.quantize"), 300, "the quantize step to start")
    _freeze_then_kill(proc, fresh, "quantstudy.quantize.quantize", target)
    wait_for(lambda: _group_gone(proc.pid), 30, "killed processes to exit")
    assert not fresh.path(target).exists()
    _recover(fresh)
    p = fresh.snakemake("-n", target)
    assert "quantize" in p.stdout + p.stderr  # redone, not taken as complete

    fresh.snakemake("--cores", "2", target)
    assert not any(fresh.path("results/models/tiny-llama").glob(".w8a8-int.*.tmp"))
    ours = json.loads(fresh.path(f"{target}/config.json").read_text())["quantization_config"]
    ref = json.loads(study.path(f"{target}/config.json").read_text())["quantization_config"]
    assert ours == ref
    assert (
        json.loads(fresh.path(f"{target}/quantstudy.json").read_text())["recipe"]
        == json.loads(study.path(f"{target}/quantstudy.json").read_text())["recipe"]
    )


def _engine_started(wf: Workflow, script: str) -> bool:
    """The step's python process has started its vLLM engine."""
    return any(engine_started(pid) for pid in python_running(wf.dir, script))


def test_sigkill_during_evaluate_then_rerun_equals_uninterrupted(fresh, study):
    target = EVAL.format(scheme="bf16", task="reverse")
    study.need(target)
    proc = _start(fresh, target)
    wait_for(lambda: _engine_started(fresh, "quantstudy.evaluate.evaluate"), 600, "the evaluation's engine to start")
    _freeze_then_kill(proc, fresh, "quantstudy.evaluate.evaluate", target)
    wait_for(lambda: _group_gone(proc.pid), 30, "vLLM processes to exit")
    assert not fresh.path(target).exists()
    _recover(fresh)
    p = fresh.snakemake("-n", target)
    assert "evaluate" in p.stdout + p.stderr  # the killed job is redone, not taken as complete

    fresh.snakemake("--cores", "2", target)
    ours = json.loads(fresh.path(target).read_text())
    ref = json.loads(study.path(target).read_text())
    assert ours["metrics"] == ref["metrics"] and ours["n_samples"] == ref["n_samples"]


def test_second_invocation_is_refused_and_first_is_unharmed(fresh, study):
    target = EVAL.format(scheme="bf16", task="count_letter")
    study.need(target)
    first = _start(fresh, target)
    try:
        # The first run holds its lock once its job runs; stopping Snakemake itself (not its
        # job) keeps it holding the lock however long the second takes, and harms nothing.
        wait_for(lambda: python_running(fresh.dir, "quantstudy.evaluate.evaluate"), 300, "the first run's job to start")
        assert any(fresh.path(".snakemake/locks").glob("*.lock"))
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = fresh.snakemake("--cores", "1", target, check=False)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert second.returncode != 0
        assert "Directory cannot be locked" in second.stdout + second.stderr, second.stderr[-2000:]
        out, _ = first.communicate(timeout=1200)
    finally:
        if first.poll() is None:
            _kill_group(first)
    assert first.returncode == 0, out[-3000:]
    assert (
        json.loads(fresh.path(target).read_text())["metrics"] == json.loads(study.path(target).read_text())["metrics"]
    )


def test_corrupted_eval_json_is_named_never_summarized(study, tmp_path):
    study.need(EVAL.format(scheme="w8a8-int", task="count_letter"), "results/summary.csv")
    wf = study.copy(tmp_path / "copy")
    bad = wf.path(EVAL.format(scheme="w8a8-int", task="count_letter"))
    bad.write_text(bad.read_text()[:100])
    p = wf.snakemake("--cores", "1", "results/summary.csv", check=False)
    out = p.stdout + p.stderr + wf.path("results/logs/summary.log").read_text()
    assert p.returncode != 0
    assert "w8a8-int/count_letter.json" in out and "not valid JSON" in out
    assert not wf.path("results/summary.csv").exists() or "w8a8-int" not in wf.path("results/summary.csv").read_text()


def test_truncated_checkpoint_is_named_by_evaluate(study, tmp_path):
    study.need("results/models/tiny-llama/w4a16-int")
    wf = study.copy(tmp_path / "copy")
    w = wf.path("results/models/tiny-llama/w4a16-int/model.safetensors")
    w.write_bytes(w.read_bytes()[:1000])
    target = EVAL.format(scheme="w4a16-int", task="reverse")
    p = wf.snakemake("--cores", "1", target, "--forcerun", "evaluate", check=False)
    log = wf.path("results/logs/evaluate/tiny-llama/w4a16-int.log").read_text()  # the job's own log
    assert p.returncode != 0
    assert "w4a16-int/model.safetensors" in log and "truncated" in log


def test_hf_token_never_written(study):
    secret = study.env["HF_TOKEN"]
    for root in (study.path("results"), study.path(".snakemake/log")):
        for f in root.rglob("*"):
            if f.is_file() and f.stat().st_size < 50_000_000:
                assert secret.encode() not in f.read_bytes(), f
