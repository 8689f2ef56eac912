from quantstudy.resources import job_resources, tensor_parallel_size

CONFIG = {
    "models": {
        "cpu": {"path": "x"},
        "8b": {"path": "x", "gpus": 1},
        "405b": {"path": "x", "gpus": 8, "resources": {"quantize": {"runtime": 1440}}},
        "pinned": {"path": "x", "gpus": 4, "resources": {"evaluate": {"mem_mb": 1000}}},
    },
    "resources": {"quantize": {"mem_mb": 64000, "runtime": 240, "threads": 16},
                  "evaluate": {"mem_mb": 32000, "runtime": 120, "threads": 8}},
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
