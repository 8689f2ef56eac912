"""The session study fails well: a failed job is reported once, by rule and wildcards with
its log tail, the rest of the study still runs (--keep-going), and the tests of the stages
that completed still pass. Shown on a copy of the finished study with one engine job
broken for real (no Snakemake output is faked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.workspace import ROOT

from .conftest import run_study

BROKEN = "results/eval/tiny-llama/w8a8-int/reverse"
# Remade by the broken run: downstream of the perf jobs only, so they do not wait on it.
REMADE = ["results/perf.csv", "results/perf_sweep.csv", "results/cost.csv"]


@pytest.fixture(scope="module")
def broken(study, tmp_path_factory):
    """A copy of the study rerun with w8a8-int's `evaluate` (reverse's outputs removed) failing: its checkpoint
    truncated (its mtime kept, so nothing else is rerun for it), its eval outputs and the
    summary removed, and the perf tables removed so the run has other work to do."""
    study.need(BROKEN + ".json", "results/summary.csv", *REMADE)
    if not study.run.ok:
        pytest.skip(f"{study.run.headline()} (reported by test_every_job_of_the_study_succeeded)")
    wf = study.copy(tmp_path_factory.mktemp("broken") / "wf")
    weights = wf.path("results/models/tiny-llama/w8a8-int/model.safetensors")
    st = weights.stat()
    weights.write_bytes(weights.read_bytes()[:1000])
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    for rel in (BROKEN + ".json", BROKEN + ".samples.jsonl", "results/summary.csv", "results/summary.md", *REMADE):
        wf.path(rel).unlink()
    wf.run = run_study(wf)
    return wf


def test_the_failed_job_is_named_once_with_its_log_tail(broken):
    run = broken.run
    assert not run.ok and run.returncode != 0 and not run.timed_out
    [job] = run.failed
    assert job.rule == "evaluate", job
    # One job evaluates every task of (model, scheme): its own log, then one per task.
    assert "scheme=w8a8-int" in job.wildcards and "task=" not in job.wildcards, job
    assert job.log.split(", ")[0] == "results/logs/evaluate/tiny-llama/w8a8-int.log", job.log
    assert "w8a8-int/model.safetensors" in job.log_tail and "truncated" in job.log_tail, job.log_tail
    assert job.name in run.headline() and "truncated" in run.report()


def test_the_rest_of_the_study_still_ran(broken, study):
    for rel in REMADE:  # --keep-going: jobs that did not need the failed one ran
        assert broken.path(rel).stat().st_mtime > study.path(rel).stat().st_mtime, rel
    assert not broken.path("results/summary.csv").exists()  # it needs the failed job
    assert broken.run.survivors == []


def test_tests_of_completed_stages_run_and_the_failure_is_reported_once(broken):
    """The suite's own tests against the broken study (QS_TEST_REUSE_STUDY reads the outcome
    from Snakemake's log): one failure naming the job, the summary's tests skipped naming it,
    the perf and checkpoint tests passing."""
    tests = [
        "tests/e2e/test_study.py::test_every_job_of_the_study_succeeded",
        "tests/e2e/test_study.py::test_summary_has_finite_scores_and_recovery_for_all_schemes",
        "tests/e2e/test_wiring.py::test_summary_csv_equals_a_recomputation_from_the_eval_results",
        "tests/e2e/test_study.py::test_checkpoints_are_compressed_tensors_with_their_recipe",
        "tests/e2e/test_perf.py::test_cost_is_queries_per_dollar_relative_to_bf16",
    ]
    env = {**broken.env, "QS_TEST_REUSE_STUDY": str(broken.dir)}
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = p.stdout + p.stderr
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", out.splitlines()[-1])}
    assert counts == {"failed": 1, "skipped": 2, "passed": 2}, out[-4000:]
    [failed] = re.findall(r"^FAILED (\S+)", out, re.M)
    assert failed == tests[0], out[-4000:]
    name = broken.run.failed[0].name
    assert "truncated" in out and name in out
    skips = re.findall(r"^SKIPPED .*$", out, re.M)  # (pytest merges identical reasons)
    assert skips and all(name in s and "test_every_job_of_the_study_succeeded" in s for s in skips), skips
