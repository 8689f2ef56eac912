from pathlib import Path

import yaml

from quantstudy.recipes import modifier_specs, needs_calibration, quantization_args

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_fp8_is_round_to_nearest_without_calibration():
    r = CONFIG["recipes"]["w8a8-fp"]
    [(name, kw)] = modifier_specs(r)
    assert name == "QuantizationModifier"
    g = kw["config_groups"]["group_0"]
    assert g["weights"] == {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True,
                            "dynamic": False, "observer": "minmax"}
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
    assert "group_size" not in quantization_args({"num_bits": 8, "type": "int", "strategy": "channel",
                                                  "symmetric": True})
