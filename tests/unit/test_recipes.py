from pathlib import Path

import yaml

from quantstudy.quantize.recipes import modifier_specs, needs_calibration, quantization_args

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_fp8_is_round_to_nearest_without_calibration():
    r = CONFIG["recipes"]["w8a8-fp"]
    [(name, kw)] = modifier_specs(r)
    assert name == "QuantizationModifier"
    g = kw["config_groups"]["group_0"]
    assert g["weights"] == {
        "num_bits": 8,
        "type": "float",
        "strategy": "channel",
        "symmetric": True,
        "dynamic": False,
        "observer": "minmax",
    }
    assert g["input_activations"]["dynamic"] is True and "observer" not in g["input_activations"]
    assert kw["ignore"] == ["lm_head"]
    assert not needs_calibration(r)


def test_int8_is_smoothquant_then_gptq():
    r = CONFIG["recipes"]["w8a8-int"]
    specs = modifier_specs(r)
    assert [n for n, _ in specs] == ["SmoothQuantModifier", "GPTQModifier"]
    assert specs[0][1] == {"smoothing_strength": r["smoothquant_strength"]}
    assert specs[1][1]["dampening_frac"] == r["dampening_frac"]
    assert needs_calibration(r)


def test_w4a16_is_weight_only_group_128():
    specs = modifier_specs(CONFIG["recipes"]["w4a16-int"])
    [(name, kw)] = specs
    g = kw["config_groups"]["group_0"]
    assert name == "GPTQModifier" and "input_activations" not in g
    assert g["weights"]["group_size"] == 128 and g["weights"]["num_bits"] == 4


def test_group_size_only_when_given():
    assert "group_size" not in quantization_args(
        {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True}
    )


def test_gptq_activation_order_is_always_explicit():
    # llmcompressor's GPTQModifier orders by activation when actorder is unset: "off" must reach it.
    r = dict(CONFIG["recipes"]["w4a16-int"])
    assert modifier_specs(r)[0][1]["actorder"] == "weight"  # the default, stated
    assert modifier_specs({**r, "actorder": "off"})[0][1]["actorder"] is None
    rtn = modifier_specs(CONFIG["recipes"]["w8a8-fp"])[0][1]
    assert "actorder" not in rtn


PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())


def _paper(model, scheme):
    from quantstudy.core.config import effective_recipe

    return effective_recipe(PAPER, model, scheme)


def test_paper_recipes_are_the_published_ones():
    """RedHatAI/neuralmagic Llama-3.1 quantized model cards."""
    r = _paper("llama-3.1-8b-instruct", "w4a16-int")
    assert (r["dampening_frac"], r["actorder"], r["calibration"]["max_seq_length"]) == (0.1, "weight", 4064)
    r = _paper("llama-3.1-70b-instruct", "w8a8-int")
    assert (r["dampening_frac"], r["calibration"]["num_samples"]) == (0.1, 256)
    assert [n for n, _ in modifier_specs(r)] == ["GPTQModifier"]  # no SmoothQuant
    r = _paper("llama-3.1-405b-instruct", "w4a16-int")
    assert r["calibration"]["num_samples"] == 512 and r["weights"]["observer"] == "minmax"
    r = _paper("llama-3.1-405b-instruct", "w8a8-int")
    assert (r["weights"]["observer"], r["dampening_frac"], r["calibration"]["max_seq_length"]) == ("mse", 0.01, 4096)
    assert modifier_specs(r)[-1][1]["config_groups"]["group_0"]["weights"]["observer"] == "mse"
    sets = {_paper(m, s)["calibration"]["set"] for m in PAPER["models"] for s in ("w8a8-int", "w4a16-int")}
    assert [PAPER["calibration_sets"][s]["hub_dataset"] for s in sets] == ["neuralmagic/LLM_compression_calibration"]
