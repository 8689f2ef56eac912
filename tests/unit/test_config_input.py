"""Config input checks of issue 13: nothing in a recipe escapes validation, duplicate keys,
--config coercion, calibration files, task metrics, known vLLM/transformers names."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from quantstudy.core.config import ConfigError, linear_input_sizes, model_size, recipe_override_errors, validate_config
from quantstudy.core.configload import coerce_overrides, load_yaml_text, read_config_file, schema_at
from quantstudy.evaluate.taskindex import TaskIndex
from quantstudy.quantize.calibration import calibration_file_problems

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))

# Which part of a recipe each variable holds, in the code that reads recipes.
# (The modifiers' own arguments are llmcompressor's: tests/unit/test_schemes.py checks those.)
RECIPE_READERS = {
    "quantstudy/core/schemes.py:modifiers": {"recipe": "recipe"},
    "quantstudy/quantize/quantize.py": {"recipe": "recipe", "cal": "calibration"},
    "quantstudy/core/config.py:_recipe_errors": {"recipe": "recipe", "calib": "calibration"},
}


def _declared() -> dict[str, set[str]]:
    d = SCHEMA["$defs"]
    return {
        "recipe": set(d["recipe"]["properties"]),
        "calibration": set(d["recipe"]["properties"]["calibration"]["properties"]),
    }


def _keys_read() -> dict[str, set[str]]:
    read: dict[str, set[str]] = {k: set() for k in _declared()}
    for where, variables in RECIPE_READERS.items():
        file, _, func = where.partition(":")
        tree = ast.parse((ROOT / file).read_text())
        if func:
            tree = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == func)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
            ):
                name, key = node.value.id, node.slice.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                name, key = node.func.value.id, node.args[0].value
            else:
                continue
            if name in variables:
                read[variables[name]].add(key)
    return read


def test_every_recipe_key_the_code_reads_is_in_the_schema_and_vice_versa():
    # A field added to the code but not the schema would be rejected by the closed schema;
    # one added to the schema but read nowhere would be accepted and do nothing.
    assert _keys_read() == _declared()


def _objects(node, path="recipe"):
    node = {**SCHEMA["$defs"][node["$ref"].split("/")[-1]], **node} if "$ref" in node else node
    if node.get("type") == "object" or "properties" in node:
        yield path, node
        for k, sub in node.get("properties", {}).items():
            yield from _objects(sub, f"{path}.{k}")
    for alt in node.get("oneOf", []):
        yield from _objects(alt, path)


def test_every_object_in_a_recipe_is_closed():
    for path, node in _objects(SCHEMA["$defs"]["recipe"]):
        assert node.get("additionalProperties") is False, path


def test_an_unknown_key_in_an_override_is_rejected():
    cfg = copy.deepcopy(DEFAULT)
    cfg["models"]["tiny-llama"]["recipe_overrides"] = {"w4a16-int": {"typo_key": 1, "calibration": {"typo_too": 2}}}
    errs = recipe_override_errors(cfg, SCHEMA)
    assert any("'models.tiny-llama.recipe_overrides.w4a16-int'" in e and "typo_key" in e for e in errs), errs
    assert any("'models.tiny-llama.recipe_overrides.w4a16-int.calibration'" in e and "typo_too" in e for e in errs)
    cfg["models"]["tiny-llama"]["recipe_overrides"] = {"w4a16-int": {"calibration": {"num_samples": 8}}}
    assert recipe_override_errors(cfg, SCHEMA) == []


def test_resource_rule_names_are_the_rules_that_read_resources():
    used = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        used |= set(re.findall(r'job_res\("(\w+)"', smk.read_text()))
    assert set(SCHEMA["$defs"]["resource_rule"]["enum"]) == used


def test_duplicate_keys_are_named_with_file_and_line():
    with pytest.raises(ConfigError, match=r"c.yaml:3: duplicate key 'a' \(first on line 1\)"):
        load_yaml_text("a: 1\nb: 2\na: 3\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml:2: duplicate key 'x'"):
        load_yaml_text("top:\n  m: {x: 1, y: 2, x: 3}\n", "c.yaml")
    assert load_yaml_text("base: &b {x: 1}\nover:\n  <<: *b\n  x: 2\n", "c.yaml")["over"] == {"x": 2}


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("models:\n  m: {path: x\nschemes: [bf16]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        read_config_file(f)
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        read_config_file(tmp_path)
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_config_file(tmp_path / "list.yaml")


def test_config_overrides_get_the_schema_type_only_where_unambiguous():
    cfg = copy.deepcopy(DEFAULT)
    # What Snakemake's parse_config makes of hub_access=true, guideline='{recovery_floor_pct: 95}' ...
    overrides = {
        "hub_access": "true",
        "guideline": {"recovery_floor_pct": "95"},
        "evaluation": {"batch_size": "auto", "engine": {"max_model_len": "512"}, "task_include_path": "7"},
        "models": {"tiny-llama": {"path": "123"}},
    }
    cfg.update(hub_access="true", guideline={"recovery_floor_pct": "95"})
    cfg["evaluation"].update(batch_size="auto", task_include_path="7")
    cfg["evaluation"]["engine"]["max_model_len"] = "512"
    cfg["models"]["tiny-llama"]["path"] = "123"
    changed = coerce_overrides(cfg, overrides, SCHEMA)
    assert cfg["hub_access"] is True and cfg["guideline"]["recovery_floor_pct"] == 95
    assert cfg["evaluation"]["engine"]["max_model_len"] == 512
    assert cfg["evaluation"]["batch_size"] == "auto" and cfg["evaluation"]["task_include_path"] == "7"
    assert cfg["models"]["tiny-llama"]["path"] == "123"  # a string where strings are allowed stays one
    assert sorted(changed) == ["evaluation.engine.max_model_len", "guideline.recovery_floor_pct", "hub_access"]
    cfg["hub_access"] = "maybe"
    coerce_overrides(cfg, {"hub_access": "maybe"}, SCHEMA)
    assert cfg["hub_access"] == "maybe"  # left for the schema check to report
    assert [a.get("type") for a in schema_at(SCHEMA, ["recipes", "w8a8-int", "calibration", "num_samples"])] == [
        "integer"
    ]


CHAT = json.dumps({"messages": [{"role": "user", "content": "a"}]})


@pytest.mark.parametrize(
    "text, want",
    [
        (CHAT + "\n{bad\n", ":2: not valid JSON"),
        ('{"text": 1}\n', ":1: expected a JSON object with 'messages'"),
        ('{"messages": "hi"}\n', ":1: 'messages' must be a non-empty list"),
        ('{"messages": [{"role": "user"}]}\n', ":1: 'messages[0]'"),
        ("\n\n", "empty"),
        (CHAT + "\n" + CHAT + "\n", "holds 2 samples, fewer than num_samples = 3"),
    ],
)
def test_calibration_file_problems(tmp_path, text, want):
    f = tmp_path / "c.jsonl"
    f.write_text(text)
    problems = calibration_file_problems(f, 3)
    assert any(want in p and str(f) in p for p in problems), problems
    f.write_text((CHAT + "\n") * 3)
    assert calibration_file_problems(f, 3) == []


def test_sizes_of_any_layout():
    llama = json.loads((ROOT / "fixtures/tiny-llama/config.json").read_text())
    gpt2 = {"n_embd": 768, "n_head": 12, "n_inner": None, "n_positions": 1024}
    vlm = {
        "text_config": {
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "intermediate_size": 14336,
            "max_position_embeddings": 131072,
        }
    }
    assert linear_input_sizes(llama) == {
        "q_proj/k_proj/v_proj/gate_proj/up_proj (hidden_size)": 128,
        "o_proj (num_attention_heads * head_dim)": 128,
        "down_proj (intermediate_size)": 512,
    }
    assert sorted(linear_input_sizes(gpt2).values()) == [768, 768, 3072]
    assert sorted(linear_input_sizes(vlm).values()) == [4096, 4096, 14336]
    assert model_size(gpt2, "max_position_embeddings") == 1024
    assert model_size(vlm, "max_position_embeddings") == 131072
    assert linear_input_sizes({"vocab_size": 5}) == {}  # cannot tell: reported as not checked


def test_task_index_reads_metrics_and_filters_of_local_tasks(tmp_path):
    idx = TaskIndex([ROOT / "data/tasks/fixture"])
    assert idx.keys("qs_count_letter") == {"acc,none", "acc_norm,none"}
    assert idx.keys("qs_reverse") == {"exact_match,strict"}
    (tmp_path / "_base.yaml").write_text("output_type: multiple_choice\n")
    (tmp_path / "a.yaml").write_text("include: _base.yaml\ntask: t_a\n")
    (tmp_path / "b.yaml").write_text("task: t_b\nmetric_list:\n  - metric: !function utils.m\n")
    (tmp_path / "c.yaml").write_text("task: t_c\nfilter_list:\n  - name: get\n    filter: []\n")
    (tmp_path / "g.yaml").write_text("group: g\ntask:\n  - t_a\n  - t_c\naggregate_metric_list:\n  - metric: acc\n")
    idx = TaskIndex([tmp_path])
    assert idx.keys("t_a") == {"acc,none", "acc_norm,none"}  # defaults of the included output_type
    assert idx.keys("t_b") is None  # metrics from code: not claimed
    assert idx.keys("t_c") == {"exact_match,get"}
    assert idx.keys("g") == {"acc,none", "acc_norm,none", "exact_match,get"}


def test_metrics_are_checked_against_the_task_yaml():
    cfg = copy.deepcopy(DEFAULT)
    cfg["tasks"]["reverse"]["metrics"] = ["exact_match,none"]
    with pytest.raises(ConfigError, match=r"tasks.reverse.metrics.0.*exact_match,strict"):
        validate_config(cfg, SCHEMA, ROOT, lm_eval_tasks_dir=ROOT / "data/tasks")


def _serve_python():
    py = VENVS / "serve/bin/python"
    if not py.exists():
        pytest.skip(f"no serve env at {py} (build it with `python3 -m tools.setup_envs serve`)")
    return py


def test_known_names_equal_the_installed_serve_env():
    from quantstudy.core import knownnames

    out = subprocess.run(
        [str(_serve_python()), "-m", "quantstudy.core.knownnames"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    installed = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(installed["engine_args"]) == knownnames.engine_args(), (
        "vLLM changed: rerun `python -m quantstudy.core.knownnames --write` in the serve env"
    )
    assert set(installed["architectures"]) == knownnames.architectures()
    assert {"max_model_len", "max_num_seqs", "enforce_eager", "dtype"} <= knownnames.engine_args()
