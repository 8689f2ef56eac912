"""One evaluate job per (model, scheme): which tasks share a model load, at which length
each task runs on it, and which request cache each checkpoint gets
(quantstudy/evaluate/evaluate.py)."""

import copy
import os
from pathlib import Path

import yaml

from quantstudy.core.resources import model_gpus, tensor_parallel_size
from quantstudy.evaluate.evaluate import (
    cache_file,
    engine_groups,
    engine_key,
    lm_settings,
    max_length,
    model_args_for,
    model_loads,
    release,
    task_key,
)
from tests.schema import with_defaults

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
VERSIONS = {"lm_eval": "0.4.13", "vllm": "0.32.0"}


def item(task, engine_override=None):
    evaluation = copy.deepcopy({k: v for k, v in DEFAULT["evaluation"].items() if k != "gpu_types"})
    evaluation["engine"] = {**evaluation["engine"], **(engine_override or {})}
    return {"task": task, "task_spec": DEFAULT["tasks"][task], "evaluation": evaluation}


def with_settings(i, backend="vllm"):
    return {**i, "settings": lm_settings(i["task_spec"], i["evaluation"], backend, device="cpu")}


def key_of(i, backend="vllm", model_dir="fixtures/tiny-llama"):
    """The engine a task needs (what groups tasks into one model load)."""
    return engine_key(backend, model_dir, with_settings(i, backend)["settings"])


def cache_key_of(i, backend="vllm", model_dir="fixtures/tiny-llama"):
    return task_key(backend, model_dir, with_settings(i, backend)["settings"])


def test_tasks_with_the_same_engine_share_one_model_load():
    plan = [item("count_letter"), item("reverse")]
    groups = engine_groups(plan, key_of)
    assert [[i["task"] for i in g] for g in groups] == [["count_letter", "reverse"]]


def test_a_task_with_its_own_engine_settings_gets_its_own_engine():
    """Settings that build another engine (dtype, KV cache, memory, ...) get a model load each."""
    for override in ({"dtype": "float16"}, {"kv_cache_dtype": "fp8"}, {"gpu_memory_utilization": 0.5}):
        plan = [item("count_letter"), item("reverse", override)]
        groups = engine_groups(plan, key_of)
        assert [[i["task"] for i in g] for g in groups] == [["count_letter"], ["reverse"]], override
        # and the first task's engine is the same as without the other
        assert key_of(plan[0]) == key_of(item("count_letter"))


def test_tasks_that_differ_only_in_max_model_len_share_one_engine_at_the_longest():
    plan = [with_settings(item("count_letter")), with_settings(item("reverse", {"max_model_len": 2048}))]
    [load] = model_loads(plan, "vllm", "fixtures/tiny-llama")
    assert [t["task"] for t in load["tasks"]] == ["count_letter", "reverse"]
    assert load["model_args"]["max_model_len"] == 2048
    # Everything else is the engine either task would have had alone.
    alone = model_args_for("vllm", "fixtures/tiny-llama", plan[0]["settings"])
    assert {**load["model_args"], "max_model_len": alone["max_model_len"]} == alone
    # Each task keeps its own length: lm-eval's max_length on the shared model.
    assert [max_length("vllm", t["settings"]) for t in load["tasks"]] == [
        DEFAULT["evaluation"]["engine"]["max_model_len"],
        2048,
    ]


def test_a_task_without_a_max_model_len_starts_the_engine_at_the_models_own():
    """None is the model's own maximum (vLLM's default), which holds every other task."""
    plan = [with_settings(item("count_letter", {"max_model_len": 512})), with_settings(item("reverse"))]
    plan[1]["settings"]["engine"].pop("max_model_len")
    [load] = model_loads(plan, "vllm", "m")
    assert "max_model_len" not in load["model_args"]
    assert [max_length("vllm", t["settings"]) for t in load["tasks"]] == [512, None]


def test_the_hf_backend_groups_on_its_own_model_arguments():
    a, b = item("count_letter"), item("reverse", {"gpu_memory_utilization": 0.5})  # vLLM-only: hf ignores it
    assert len(engine_groups([a, b], lambda i: key_of(i, "hf"))) == 1
    assert len(engine_groups([a, b], key_of)) == 2
    c = item("reverse", {"max_model_len": 2048})  # the hf model's max_length: set per task too
    [load] = model_loads([with_settings(a, "hf"), with_settings(c, "hf")], "hf", "m")
    assert load["model_args"]["max_length"] == 2048
    assert [max_length("hf", t["settings"]) for t in load["tasks"]] == [
        DEFAULT["evaluation"]["engine"]["max_model_len"],
        2048,
    ]
    d = item("reverse", {"dtype": "float16"})
    assert len(engine_groups([a, d], lambda i: key_of(i, "hf"))) == 2


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
            str(tmp_path / "cache"), "tiny-llama", scheme, str(ckpt), cache_key_of(i, model_dir=str(ckpt)), VERSIONS
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
    key = cache_key_of(item("count_letter"), model_dir=str(ckpt))
    before = cache_file(str(tmp_path), "m", "w4a16-int", str(ckpt), key, VERSIONS)
    assert cache_file(str(tmp_path), "m", "w4a16-int", str(ckpt), key, VERSIONS) == before
    w.write_bytes(b"again")  # same size, newer mtime: a re-quantized checkpoint
    os.utime(w, ns=(w.stat().st_atime_ns, w.stat().st_mtime_ns + 10**9))
    assert cache_file(str(tmp_path), "m", "w4a16-int", str(ckpt), key, VERSIONS) != before


def test_engine_settings_and_versions_name_another_cache(tmp_path):
    """A task's max length names its cache (answers are cut there), though its engine is shared."""
    key = cache_key_of(item("count_letter"))
    other = cache_key_of(item("count_letter", {"max_model_len": 2048}))
    base = cache_file(str(tmp_path), "m", "bf16", "fixtures/tiny-llama", key, VERSIONS)
    assert cache_file(str(tmp_path), "m", "bf16", "fixtures/tiny-llama", other, VERSIONS) != base
    assert cache_file(str(tmp_path), "m", "bf16", "fixtures/tiny-llama", key, {**VERSIONS, "vllm": "0.33"}) != base


# ---- the paper grid: per-task max_model_len, one model load per (model, scheme) ----------

PAPER = with_defaults(yaml.safe_load((ROOT / "config/paper.yaml").read_text()))


def paper_plan(model: str) -> list[dict]:
    """One evaluate job's plan items as rules/common.smk builds them (evaluation_settings,
    engine_args: the task's engine over evaluation.engine, sharded over the model's GPUs);
    tests/e2e/test_paper.py reads the real ones from the dry run."""
    ev = {k: v for k, v in PAPER["evaluation"].items() if k != "gpu_types"}
    items = []
    for task, spec in PAPER["tasks"].items():
        engine = {**ev["engine"], **spec.get("engine", {})}
        if model_gpus(PAPER, model) > 0:
            engine["tensor_parallel_size"] = tensor_parallel_size(PAPER, model)
        items.append(with_settings({"task": task, "task_spec": spec, "evaluation": {**ev, "engine": engine}}))
    return items


def test_the_paper_grid_loads_each_checkpoint_once():
    """15 tasks at five max_model_len (8192 by default; MMLU 3850, MMLU-CoT 4064, ARC 3940,
    leaderboard v2 4096): one engine per (model, scheme), at 8192."""
    lengths = {max_length("vllm", t["settings"]) for t in paper_plan(next(iter(PAPER["models"])))}
    assert lengths == {8192, 3850, 4064, 3940, 4096}
    for model in PAPER["models"]:
        for scheme in PAPER["schemes"]:
            plan = paper_plan(model)
            loads = model_loads(plan, "vllm", f"results/models/{model}/{scheme}")
            assert len(loads) == 1, (model, scheme)
            assert [t["task"] for t in loads[0]["tasks"]] == list(PAPER["tasks"])
            args = loads[0]["model_args"]
            assert args["max_model_len"] == 8192
            assert args["tensor_parallel_size"] == tensor_parallel_size(PAPER, model)


def test_each_paper_task_truncates_as_on_its_own_engine():
    """lm-eval's vLLM model truncates every request to its max_length, which is the
    max_model_len its engine was built with (vllm_causallms.py): on the shared engine each
    task gets its own back (set_max_length), the one it had when it had an engine of its own,
    and the shared engine holds every task's longest request. The request cache is still named
    by the task's own engine, so the answers cached per task stay valid."""
    model = "llama-3.1-8b-instruct"
    plan = paper_plan(model)
    [load] = model_loads(plan, "vllm", "ckpt")
    for t in plan:
        s = t["settings"]
        alone = model_args_for("vllm", "ckpt", s)  # the engine the task had alone
        assert max_length("vllm", s) == alone["max_model_len"] == s["engine"]["max_model_len"], t["task"]
        assert max_length("vllm", s) <= load["model_args"]["max_model_len"]
        assert {**load["model_args"], "max_model_len": alone["max_model_len"]} == alone, t["task"]
    want = {"mmlu": 3850, "mmlu-cot": 4064, "arc-challenge": 3940, "ifeval": 4096, "hellaswag": 8192}
    assert {t["task"]: max_length("vllm", t["settings"]) for t in plan if t["task"] in want} == want
    # Tasks of one length share a request cache; tasks of another length never do.
    keys = {}
    for t in plan:
        keys.setdefault(task_key("vllm", "ckpt", t["settings"]), set()).add(max_length("vllm", t["settings"]))
    assert len(keys) == 5 and all(len(v) == 1 for v in keys.values())


def test_a_tasks_cache_does_not_depend_on_the_other_tasks():
    """Adding a longer task lengthens the shared engine, not the others' request caches."""
    a = with_settings(item("count_letter"))
    before = task_key("vllm", "m", a["settings"])
    longer = with_settings(item("reverse", {"max_model_len": 4096}))
    [load] = model_loads([a, longer], "vllm", "m")
    assert load["model_args"]["max_model_len"] == 4096
    assert task_key("vllm", "m", load["tasks"][0]["settings"]) == before


# ---- freeing an engine between model loads ------------------------------------------------


class _Part:
    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def shutdown(self):
        self.calls.append(self.name)


def test_release_shuts_a_vllm_engine_down_renderer_first():
    from types import SimpleNamespace

    calls = []
    engine = SimpleNamespace(renderer=_Part(calls, "renderer"), engine_core=_Part(calls, "engine_core"))
    release(SimpleNamespace(model=SimpleNamespace(llm_engine=engine)))
    assert calls == ["renderer", "engine_core"]
    # An engine without a renderer (another vLLM) still has its core shut down.
    calls.clear()
    release(SimpleNamespace(model=SimpleNamespace(llm_engine=SimpleNamespace(engine_core=_Part(calls, "core")))))
    assert calls == ["core"]


def test_release_leaves_a_model_without_an_engine_alone():
    from types import SimpleNamespace

    release(SimpleNamespace(model=SimpleNamespace()))  # lm-eval's hf model: a torch module
    release(SimpleNamespace())
