"""Schemes as data: recipes read without llmcompressor (names, arguments, formats,
calibration), the support matrix, and the real llmcompressor agreeing with both."""

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from quantstudy.core import schemes
from quantstudy.core.config import effective_recipe

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
QUANTIZE_PY = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv")) / "quantize/bin/python"


def fmt(recipe):
    return schemes.format_of(schemes.quantization(recipe))


def test_the_shipped_recipes_name_their_formats():
    got = {name: fmt(r) for name, r in CONFIG["recipes"].items()}
    assert got["w8a8-fp"] == "w8a8-fp8"
    assert got["w8a8-int"] == got["w8a8-int-kv8"] == "w8a8-int"
    assert got["w4a16-int"] == got["w4a16-awq"] == "w4a16-int"
    assert got["w8a16-int"] == "w8a16-int"
    assert got["w4a16-nvfp4"] == "w4a16-nvfp4"
    assert schemes.kv_format(schemes.quantization(CONFIG["recipes"]["w8a8-int-kv8"])) == "fp8"
    paper = {name: fmt(r) for name, r in PAPER["recipes"].items()}
    assert paper["w8a8-fp8-block"] == "w8a8-fp8-block" and paper["w4afp8"] == "w4a8-fp8"
    assert paper["w4a4-nvfp4"] == "w4a4-nvfp4"


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("W8A8", "w8a8-int"),
        ("W4A16", "w4a16-int"),
        ("W4A16_ASYM", "w4a16-int"),
        ("W8A16", "w8a16-int"),
        ("W4A8", "w4a8-int"),
        ("W4AFP8", "w4a8-fp8"),
        ("FP8_DYNAMIC", "w8a8-fp8"),
        ("FP8", "w8a8-fp8"),
        ("FP8_BLOCK", "w8a8-fp8-block"),
        ("NVFP4", "w4a4-nvfp4"),
        ("NVFP4A16", "w4a16-nvfp4"),
        ("MXFP4", "w4a4-mxfp4"),
        ("MXFP4A16", "w4a16-mxfp4"),
    ],
)
def test_every_preset_maps_to_a_format_the_matrix_knows(preset, expected):
    recipe = {"modifiers": [{"QuantizationModifier": {"scheme": preset}}]}
    assert fmt(recipe) == expected
    assert expected in schemes.support_matrix({})["formats"]


def test_calibration_is_needed_as_llmcompressor_decides():
    needs = {name: schemes.needs_calibration(r) for name, r in CONFIG["recipes"].items()}
    assert needs == {
        "w8a8-fp": False,  # dynamic activations, round to nearest
        "w8a8-int": True,  # SmoothQuant + GPTQ
        "w4a16-int": True,  # GPTQ
        "w4a16-awq": True,  # AWQ
        "w8a8-int-kv8": True,  # KV-cache scales are observed
        "w8a16-int": False,
        "w4a16-nvfp4": False,  # weight-only: scales from the weights alone
    }


def test_unknown_modifiers_arguments_and_presets_are_named_by_key():
    recipe = {
        "modifiers": [
            {"GPTQModfier": {"scheme": "W4A16"}},
            {"GPTQModifier": {"scheme": "W4A17", "dampening": 0.1}},
            {"QuantizationModifier": {"scheme": "W8A8", "config_groups": {"g": {}}}},
        ]
    }
    errs = "\n".join(schemes.recipe_errors("recipes.x", recipe))
    assert "config key 'recipes.x.modifiers[0]': llmcompressor 0.14.0.1 has no modifier 'GPTQModfier'" in errs
    assert "'recipes.x.modifiers[1].GPTQModifier.dampening': GPTQModifier has no argument 'dampening'" in errs
    assert "'recipes.x.modifiers[1].GPTQModifier.scheme': 'W4A17' is not a preset scheme" in errs
    assert "'recipes.x.modifiers[2].QuantizationModifier': give 'scheme' or 'config_groups', not both" in errs


def test_a_recipe_that_quantizes_nothing_is_an_error():
    errs = schemes.recipe_errors("recipes.x", {"modifiers": [{"SmoothQuantModifier": {}}]})
    assert errs and "no modifier quantizes" in errs[0]


def test_override_merges_into_the_modifier_of_its_class():
    cfg = copy.deepcopy(CONFIG)
    cfg["models"]["tiny-llama"]["recipe_overrides"] = {
        "w4a16-int": {
            "modifiers": {"GPTQModifier": {"config_groups": {"group_0": {"weights": {"group_size": 64}}}}},
            "calibration": {"num_samples": 8},
        }
    }
    r = effective_recipe(cfg, "tiny-llama", "w4a16-int")
    w = r["modifiers"][0]["GPTQModifier"]["config_groups"]["group_0"]["weights"]
    assert w["group_size"] == 64 and w["num_bits"] == 4 and w["observer"] == "minmax"
    assert r["calibration"] == {**CONFIG["recipes"]["w4a16-int"]["calibration"], "num_samples": 8}
    assert (
        CONFIG["recipes"]["w4a16-int"]["modifiers"][0]["GPTQModifier"]["config_groups"]["group_0"]["weights"][
            "group_size"
        ]
        == 128
    )  # not mutated


def test_support_on_this_cpu_and_on_gpus():
    def status(scheme, arch, cfg=CONFIG):
        return schemes.support(cfg, "tiny-llama", scheme, arch)

    assert status("bf16", "cpu")["status"] == "native"
    assert status("w8a8-int", "cpu")["status"] == "native"
    assert status("w8a8-fp", "cpu")["status"] == "emulated"
    assert status("w8a8-fp", "sm86")["served_as"] == "FP8 weight-only (Marlin), activations bf16"
    assert status("w8a8-fp", "sm90") == {**status("w8a8-fp", "sm90"), "status": "native", "served_as": "w8a8-fp8"}
    assert status("w8a16-int", "cpu")["status"] == "unsupported"
    assert status("w4a16-nvfp4", "sm90")["status"] == "native"  # FP4 Marlin
    assert status("w4a16-nvfp4", "cpu")["status"] == "unsupported"
    assert schemes.support(PAPER, "llama-3.1-8b-instruct", "w4a4-nvfp4", "sm90")["status"] == "emulated"
    assert schemes.support(PAPER, "llama-3.1-8b-instruct", "w4a4-nvfp4", "sm100")["status"] == "native"
    assert status("w8a8-int-kv8", "cpu")["served_as"] == "w8a8-int + fp8 KV cache"


def test_config_overrides_the_matrix_for_new_hardware():
    cfg = copy.deepcopy(CONFIG)
    cfg["support_matrix"] = {"formats": {"w8a16-int": {"support": {"cpu": {"emulated": "dequantized to bf16"}}}}}
    s = schemes.support(cfg, "tiny-llama", "w8a16-int", "cpu")
    assert s["status"] == "emulated" and s["served_as"] == "dequantized to bf16"
    assert schemes.evaluation_backend(cfg, "tiny-llama", "w8a16-int") == "vllm"
    assert schemes.evaluation_backend(CONFIG, "tiny-llama", "w8a16-int") == "hf"


def test_bytes_per_param_follow_the_weight_format():
    q = {name: schemes.bytes_per_param(schemes.quantization(r)) for name, r in CONFIG["recipes"].items()}
    assert q["w8a8-int"] == 1.0 and q["w4a16-int"] == pytest.approx(0.5 + 2 / 128)
    assert q["w4a16-nvfp4"] == pytest.approx(0.5 + 2 / 16)


def test_the_catalogue_equals_the_installed_llmcompressor():
    """A bump of envs/quantize.yaml cannot leave quantstudy/data/llmcompressor.json stale."""
    out = subprocess.run(
        [str(QUANTIZE_PY), "-m", "quantstudy.quantize.catalogue"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == schemes.catalogue(), (
        "llmcompressor changed: rerun `python -m quantstudy.quantize.catalogue --write` in the quantize env"
    )


def test_llmcompressor_builds_every_shipped_recipe_and_agrees_on_calibration(tmp_path):
    """The real modifiers, built with no model (pydantic checks every value), for every recipe
    of every shipped config; llmcompressor's own calibration rule equals ours."""
    recipes = {f"{c}:{n}": r for c in ("config", "paper", "smollm2") for n, r in _recipes(c).items()}
    bad = {"modifiers": [{"GPTQModifier": {"scheme": "W4A16", "block_size": "big"}}]}
    script = (
        "import json, sys\n"
        "from quantstudy.quantize.recipes import RecipeError, build, requires_calibration\n"
        "out = {}\n"
        "for name, r in json.load(open(sys.argv[1])).items():\n"
        "    try:\n"
        "        out[name] = requires_calibration(build(r, 'recipes.' + name))\n"
        "    except RecipeError as e:\n"
        "        out[name] = str(e)\n"
        "print(json.dumps(out))\n"
    )
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps({**recipes, "bad": bad}))
    out = subprocess.run(
        [str(QUANTIZE_PY), "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "config key 'recipes.bad.modifiers[0].GPTQModifier.block_size'" in got.pop("bad")
    assert got == {name: schemes.needs_calibration(r) for name, r in recipes.items()}


def _recipes(name):
    return yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())["recipes"]
