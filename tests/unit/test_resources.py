import copy
from pathlib import Path

import yaml

from quantstudy.core.resources import fit_problem, job_resources, route, tensor_parallel_size

CONFIG = {
    "models": {
        "cpu": {"path": "x"},
        "8b": {"path": "x", "gpus": 1},
        "405b": {"path": "x", "gpus": 8, "resources": {"quantize": {"runtime": 1440}}},
        "pinned": {"path": "x", "gpus": 4, "resources": {"evaluate": {"mem_mb": 1000}}},
    },
    "resources": {
        "quantize": {"mem_mb": 64000, "runtime": 240, "threads": 16},
        "evaluate": {"mem_mb": 32000, "runtime": 120, "threads": 8},
    },
}


def test_cpu_model_asks_no_gpu():
    r = job_resources(CONFIG, "quantize", "cpu")
    assert r == {"gpu": 0, "mem_mb": 64000, "runtime": 240, "threads": 16}


def test_memory_scales_with_gpus_and_attempt():
    assert job_resources(CONFIG, "quantize", "8b")["mem_mb"] == 64000
    r = job_resources(CONFIG, "quantize", "405b", attempt=2)
    assert r["gpu"] == 8 and r["mem_mb"] == 64000 * 8 * 2
    assert r["runtime"] == 1440 * 2  # model override, then attempt scaling


def test_explicit_memory_override_is_not_rescaled_by_gpus():
    assert job_resources(CONFIG, "evaluate", "pinned", attempt=3)["mem_mb"] == 3000


def test_light_rules_never_ask_for_gpus():
    assert job_resources(CONFIG, "summary", "405b")["gpu"] == 0


def test_tensor_parallel_follows_gpus():
    assert tensor_parallel_size(CONFIG, "cpu") == 1
    assert tensor_parallel_size(CONFIG, "405b") == 8


PAPER = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/paper.yaml").read_text())
M8, M70, M405 = "llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.1-405b-instruct"


def test_every_paper_gpu_job_is_routed_to_a_type_it_fits():
    for model in PAPER["models"]:
        for scheme in PAPER["schemes"]:
            for rule in ("quantize", "evaluate", "generate"):
                gpu = route(PAPER, rule, model, scheme)
                assert gpu in PAPER["gpu_types"], (rule, model, scheme)
                assert fit_problem(PAPER, rule, model, scheme, gpu) is None
    assert route(PAPER, "evaluate", M8, "bf16") == "a6000"
    # 8-bit 405B (~406 GB) does not fit 8 x A6000 (48 GB): the next type that holds it.
    assert "exceed" in fit_problem(PAPER, "evaluate", M405, "w8a8-int", "a6000")
    assert route(PAPER, "evaluate", M405, "w8a8-int") == "a100"
    # bf16 405B (~812 GB) fits no 8 x 80 GB node.
    assert fit_problem(PAPER, "evaluate", M405, "bf16", "h100") is not None
    assert route(PAPER, "evaluate", M405, "bf16") == "h200"
    # Quantizing holds the bf16 model in host memory: 405B needs a node with > 1 TB.
    assert route(PAPER, "quantize", M405, "w4a16-int") == "h100"


def test_perf_jobs_fit_their_gpu_types():
    for model, spec in PAPER["models"].items():
        for gpu in spec.get("gpu_types", PAPER["performance"]["gpu_types"]):
            for scheme in spec.get("perf_schemes", PAPER["schemes"]):
                assert fit_problem(PAPER, "perf", model, scheme, gpu) is None, (model, scheme, gpu)


def test_memory_never_exceeds_the_node_on_any_attempt():
    for attempt in (1, 2, 3):
        r = job_resources(PAPER, "quantize", M405, attempt, route(PAPER, "quantize", M405, "w8a8-int"))
        assert r["mem_mb"] <= PAPER["gpu_types"]["h100"]["node_mem_mb"], attempt
    assert job_resources(PAPER, "quantize", M405, 3, "h100")["mem_mb"] == 2000000
    assert job_resources(PAPER, "evaluate", M8, 1, "a6000")["mem_mb"] == 120000  # under the cap: as asked


def test_a_config_where_nothing_fits_names_the_job_before_any_job():
    from quantstudy.core.config import _placement_errors

    cfg = copy.deepcopy(PAPER)
    cfg["evaluation"]["gpu_types"] = ["a6000", "a100", "h100"]  # no H200
    errs = _placement_errors(cfg, M405)
    assert any("(llama-3.1-405b-instruct, bf16)" in e and "evaluate" in e and "h100" in e for e in errs), errs
    cfg = copy.deepcopy(PAPER)
    cfg["models"][M405]["gpu_types"] = ["a6000"]
    errs = _placement_errors(cfg, M405)
    assert any("'models.llama-3.1-405b-instruct.gpu_types'" in e and "a6000" in e for e in errs), errs
