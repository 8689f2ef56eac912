"""Turn a config recipe into llmcompressor modifier specs (plain data: testable without it).

The config states every parameter explicitly (bits, type, strategy, group size,
observer, dampening, smoothing strength, ignore list); nothing is taken from a preset,
so what is in the config is exactly what the checkpoint was made with.
"""

from __future__ import annotations

# GPTQ activation ordering: "weight" (columns quantized in order of activation magnitude,
# calibration only, same checkpoint format and speed) or "off". The schema's default is
# this, llmcompressor's own default (GPTQModifier actorder "static" = "weight").
ACTORDER_DEFAULT = "weight"


def quantization_args(spec: dict) -> dict:
    """compressed-tensors QuantizationArgs fields from a config quant_args block."""
    args = {
        "num_bits": spec["num_bits"],
        "type": spec["type"],
        "strategy": spec["strategy"],
        "symmetric": spec["symmetric"],
        "dynamic": spec.get("dynamic", False),
    }
    if spec.get("group_size") is not None:
        args["group_size"] = spec["group_size"]
    if spec.get("observer") and not args["dynamic"]:  # dynamic args are computed per token, no observer
        args["observer"] = spec["observer"]
    return args


def modifier_specs(recipe: dict) -> list[tuple[str, dict]]:
    """[(modifier class name, kwargs)] in application order."""
    specs: list[tuple[str, dict]] = []
    ignore = list(recipe.get("ignore", []))
    if recipe.get("smoothquant_strength"):
        specs.append(("SmoothQuantModifier", {"smoothing_strength": recipe["smoothquant_strength"]}))
    group = {"targets": ["Linear"], "weights": quantization_args(recipe["weights"])}
    if recipe.get("input_activations"):
        group["input_activations"] = quantization_args(recipe["input_activations"])
    kwargs = {"config_groups": {"group_0": group}, "ignore": ignore}
    if recipe["algorithm"] == "gptq":
        kwargs["dampening_frac"] = recipe.get("dampening_frac", 0.01)
        if recipe.get("block_size"):
            kwargs["block_size"] = recipe["block_size"]
        # Always explicit: llmcompressor's GPTQModifier turns activation ordering on when unset.
        kwargs["actorder"] = None if recipe.get("actorder", ACTORDER_DEFAULT) == "off" else "weight"
        specs.append(("GPTQModifier", kwargs))
    elif recipe["algorithm"] == "rtn":
        specs.append(("QuantizationModifier", kwargs))
    else:
        raise ValueError(f"unknown algorithm {recipe['algorithm']!r} (expected rtn or gptq)")
    return specs


def needs_calibration(recipe: dict) -> bool:
    return recipe["algorithm"] == "gptq" or bool(recipe.get("smoothquant_strength"))
