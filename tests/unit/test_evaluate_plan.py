"""One evaluate job per (model, scheme): which tasks share a model load, and which request
cache each checkpoint gets (quantstudy/evaluate/evaluate.py)."""

import copy
import os
from pathlib import Path

import yaml

from quantstudy.evaluate.evaluate import cache_file, engine_groups, hf_model_args, lm_key, settings_from

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
VERSIONS = {"lm_eval": "0.4.13", "vllm": "0.32.0"}


def item(task, engine_override=None):
    evaluation = copy.deepcopy({k: v for k, v in DEFAULT["evaluation"].items() if k != "gpu_types"})
    evaluation["engine"] = {**evaluation["engine"], **(engine_override or {})}
    return {"task": task, "task_spec": DEFAULT["tasks"][task], "evaluation": evaluation}


def key_of(i, backend="vllm", model_dir="fixtures/tiny-llama"):
    s = settings_from(i["task_spec"], i["evaluation"], backend)
    if backend == "hf":
        s["model_args"] = hf_model_args(s["engine"])
    return lm_key(backend, model_dir, s)


def test_tasks_with_the_same_engine_share_one_model_load():
    plan = [item("count_letter"), item("reverse")]
    groups = engine_groups(plan, key_of)
    assert [[i["task"] for i in g] for g in groups] == [["count_letter", "reverse"]]


def test_a_task_with_its_own_engine_settings_gets_its_own_engine():
    plan = [item("count_letter"), item("reverse", {"max_model_len": 2048})]
    groups = engine_groups(plan, key_of)
    assert [[i["task"] for i in g] for g in groups] == [["count_letter"], ["reverse"]]
    # and the first task's engine is the same as without the other
    assert key_of(plan[0]) == key_of(item("count_letter"))


def test_the_hf_backend_groups_on_its_own_model_arguments(monkeypatch):
    from quantstudy.core import hfbackend

    monkeypatch.setattr(hfbackend, "device", lambda: "cpu")  # no torch in this env
    a, b = item("count_letter"), item("reverse", {"gpu_memory_utilization": 0.5})  # vLLM-only: hf ignores it
    assert len(engine_groups([a, b], lambda i: key_of(i, "hf"))) == 1
    assert len(engine_groups([a, b], key_of)) == 2
    c = item("reverse", {"max_model_len": 2048})  # the hf model's max_length
    assert len(engine_groups([a, c], lambda i: key_of(i, "hf"))) == 2


def test_no_two_schemes_share_a_request_cache(tmp_path):
    """lm-eval keys its cache on the request only: bf16's answers must never be served to a
    quantized scheme, so every (model, scheme) has its own file, in its own folder."""
    i = item("count_letter")
    files = {}
    for scheme in DEFAULT["schemes"]:
        ckpt = tmp_path / scheme
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"same bytes in every scheme")
        files[scheme] = cache_file(
            str(tmp_path / "cache"), "tiny-llama", scheme, str(ckpt), key_of(i, model_dir=str(ckpt)), VERSIONS
        )
    assert len(set(files.values())) == len(files)
    assert len({str(Path(f).parent) for f in files.values()}) == len(files)
    for scheme, f in files.items():
        assert Path(f).parent == tmp_path / "cache" / "tiny-llama" / scheme


def test_a_remade_checkpoint_gets_a_fresh_cache(tmp_path):
    ckpt = tmp_path / "w4a16-int"
    ckpt.mkdir()
    w = ckpt / "model.safetensors"
    w.write_bytes(b"first")
    key = key_of(item("count_letter"), model_dir=str(ckpt))
    before = cache_file(str(tmp_path), "m", "w4a16-int", str(ckpt), key, VERSIONS)
    assert cache_file(str(tmp_path), "m", "w4a16-int", str(ckpt), key, VERSIONS) == before
    w.write_bytes(b"again")  # same size, newer mtime: a re-quantized checkpoint
    os.utime(w, ns=(w.stat().st_atime_ns, w.stat().st_mtime_ns + 10**9))
    assert cache_file(str(tmp_path), "m", "w4a16-int", str(ckpt), key, VERSIONS) != before


def test_engine_settings_and_versions_name_another_cache(tmp_path):
    key = key_of(item("count_letter"))
    other = key_of(item("count_letter", {"max_model_len": 2048}))
    base = cache_file(str(tmp_path), "m", "bf16", "fixtures/tiny-llama", key, VERSIONS)
    assert cache_file(str(tmp_path), "m", "bf16", "fixtures/tiny-llama", other, VERSIONS) != base
    assert cache_file(str(tmp_path), "m", "bf16", "fixtures/tiny-llama", key, {**VERSIONS, "vllm": "0.33"}) != base
