"""Schemes are data: each quantized scheme is a recipe, a list of llmcompressor modifiers.

A recipe in config (recipes.<scheme>) is

    modifiers:                       # applied in order, as in llmcompressor's recipe YAML
      - SmoothQuantModifier: {smoothing_strength: 0.8}
      - GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}
    calibration: {set: ..., num_samples: ..., max_seq_length: ...}   # when a modifier needs data

This module reads recipes without llmcompressor (Snakemake's env has none): names and
arguments are checked against the catalogue written from the pinned quantize env
(quantstudy/data/llmcompressor.json, quantstudy.quantize.catalogue), and the numeric format a
recipe produces (weights, activations, KV cache) is derived from its preset or config_groups.
That format keys the support matrix (quantstudy/data/support_matrix.yaml): which hardware
serves it natively, by emulation (as what), or not at all.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import yaml

from quantstudy.core.config import BASELINE, deep_merge

DATA = Path(__file__).parents[1] / "data"
CATALOGUE_FILE = DATA / "llmcompressor.json"
SUPPORT_FILE = DATA / "support_matrix.yaml"
NATIVE, EMULATED, UNSUPPORTED = "native", "emulated", "unsupported"


@functools.cache
def catalogue() -> dict:
    return json.loads(CATALOGUE_FILE.read_text())


@functools.cache
def _support_file() -> dict:
    return yaml.safe_load(SUPPORT_FILE.read_text())


# ------------------------------------------------------------------ recipes


def modifiers(recipe: dict) -> list[tuple[str, dict]]:
    """[(modifier class name, arguments)] in application order."""
    return [(name, dict(args or {})) for item in recipe["modifiers"] for name, args in item.items()]


def merge_override(recipe: dict, override: dict) -> dict:
    """A recipe with a per-model override: `calibration` deep-merges; `modifiers` is either a
    list (replaces the recipe's) or {ClassName: {arguments}}, deep-merged into the recipe's
    modifier of that class (e.g. {GPTQModifier: {config_groups: {group_0: {weights: {group_size: 64}}}}})."""
    out = copy.deepcopy(recipe)
    for key, value in override.items():
        if key == "modifiers" and isinstance(value, dict):
            items = out["modifiers"]
            for name, args in value.items():
                for item in items:
                    if name in item:
                        both = isinstance(item[name] or {}, dict) and isinstance(args, dict)
                        # not a mapping: taken as is, for the schema check to name
                        item[name] = deep_merge(item[name] or {}, args) if both else copy.deepcopy(args)
                        break
                else:  # reported by override_errors
                    items.append({name: copy.deepcopy(args)})
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def recipe_errors(key: str, recipe: dict, cat: dict | None = None) -> list[str]:
    """What the pinned llmcompressor would refuse, or silently ignore, in a recipe: unknown
    modifiers and arguments, unknown presets, no quantizing modifier. Each names its config key."""
    cat = cat or catalogue()
    known = cat["modifiers"]
    version = cat["versions"]["llmcompressor"]
    errs = []
    quantizers = 0
    for i, (name, args) in enumerate(modifiers(recipe)):
        where = f"{key}.modifiers[{i}]"
        if name not in known:
            errs.append(
                f"config key '{where}': llmcompressor {version} has no modifier '{name}' "
                f"(it has: {', '.join(sorted(known))})"
            )
            continue
        spec = known[name]
        for arg in args:
            if arg not in spec["arguments"]:
                errs.append(
                    f"config key '{where}.{name}.{arg}': {name} has no argument '{arg}' in llmcompressor "
                    f"{version} (it has: {', '.join(spec['arguments'])})"
                )
        if not spec["quantizes"]:
            continue
        quantizers += 1
        scheme = args.get("scheme")
        if scheme is not None and args.get("config_groups") is not None:
            errs.append(f"config key '{where}.{name}': give 'scheme' or 'config_groups', not both")
        for preset in [scheme] if isinstance(scheme, str) else list(scheme or {}):
            if preset.upper() not in cat["presets"]:
                errs.append(
                    f"config key '{where}.{name}.scheme': '{preset}' is not a preset scheme of compressed-tensors "
                    f"{cat['versions']['compressed-tensors']} (presets: {', '.join(sorted(cat['presets']))})"
                )
        if scheme is None and not args.get("config_groups"):
            errs.append(f"config key '{where}.{name}': quantizes nothing: give 'scheme' (a preset) or 'config_groups'")
    if not errs and quantizers == 0:
        errs.append(
            f"config key '{key}.modifiers': no modifier quantizes "
            f"(one of {', '.join(n for n, s in sorted(known.items()) if s['quantizes'])} must)"
        )
    return errs


def _quant_args(args: dict | None) -> dict | None:
    if not args:
        return None
    keep = ("num_bits", "type", "strategy", "group_size", "symmetric", "dynamic", "block_structure")
    return {k: args[k] for k in keep if k in args}


def quantization(recipe: dict, cat: dict | None = None) -> dict:
    """The numeric format the recipe gives the Linear layers: {weights, input_activations,
    kv_cache} (compressed-tensors QuantizationArgs fields, or None), from its last quantizing
    modifier's preset or first config group."""
    cat = cat or catalogue()
    out = {"weights": None, "input_activations": None, "kv_cache": None}
    for name, args in modifiers(recipe):
        if not cat["modifiers"].get(name, {}).get("quantizes"):
            continue
        scheme = args.get("scheme")
        if isinstance(scheme, dict):  # {preset: targets}: the first preset speaks for the Linears
            scheme = next(iter(scheme), None)
        if isinstance(scheme, str) and scheme.upper() in cat["presets"]:
            preset = cat["presets"][scheme.upper()]
            group = {"weights": preset["weights"], "input_activations": preset["input_activations"]}
        else:
            groups = args.get("config_groups") or {}
            group = next(iter(groups.values()), {}) if groups else {}
        out["weights"] = _quant_args(group.get("weights"))
        out["input_activations"] = _quant_args(group.get("input_activations"))
        out["kv_cache"] = _quant_args(args.get("kv_cache_scheme"))
    return out


def needs_calibration(recipe: dict, cat: dict | None = None) -> bool:
    """Whether llmcompressor will ask for calibration data: a data-driven modifier (GPTQ,
    AWQ, SmoothQuant, ...), static activation scales, or a quantized KV cache (its scales
    are observed)."""
    cat = cat or catalogue()
    if any(cat["modifiers"].get(name, {}).get("requires_calibration") for name, _ in modifiers(recipe)):
        return True
    q = quantization(recipe, cat)
    acts = q["input_activations"]
    if q["kv_cache"] is not None or (acts is not None and acts.get("dynamic") is False):
        return True
    for _, args in modifiers(recipe):
        scheme = args.get("scheme")
        if isinstance(scheme, str) and cat["presets"].get(scheme.upper(), {}).get("requires_calibration"):
            return True
    return False


def format_of(q: dict) -> str | None:
    """The support matrix's name for a numeric format (kv cache apart), e.g. w8a8-int,
    w4a16-int, w8a8-fp8-block, w4a4-nvfp4; None for a combination the matrix does not name."""
    w, a = q["weights"], q["input_activations"]
    if w is None:
        return None
    bits, kind = w["num_bits"], w["type"]
    if kind == "float" and bits == 4:  # FP4: NVFP4 (groups of 16 under a tensor scale) or MXFP4 (groups of 32)
        family = "nvfp4" if w.get("strategy") == "tensor_group" else "mxfp4"
        return f"w4a{4 if a else 16}-{family}"
    if kind == "float" and bits == 8:
        if a is None:
            return "w8a16-fp8"
        if a["type"] == "float" and a["num_bits"] == 8:
            return "w8a8-fp8-block" if w.get("strategy") == "block" else "w8a8-fp8"
        return None
    if kind == "int":
        if a is None:
            return f"w{bits}a16-int"
        if a["type"] == "int":
            return f"w{bits}a{a['num_bits']}-int"
        if a["type"] == "float" and a["num_bits"] == 8:
            return f"w{bits}a8-fp8"
    return None


def kv_format(q: dict) -> str | None:
    """The KV cache's format, e.g. fp8; None when the cache stays 16-bit."""
    kv = q["kv_cache"]
    return None if kv is None else f"{'fp' if kv['type'] == 'float' else 'int'}{kv['num_bits']}"


def bytes_per_param(q: dict) -> float:
    """Checkpoint bytes per weight: the bits, plus a 16-bit scale per group where grouped."""
    w = q["weights"]
    if w is None:
        return 2.0
    per = w["num_bits"] / 8
    if w.get("group_size"):
        per += 2 / w["group_size"]
    return per


# ------------------------------------------------------------------ the support matrix


def support_matrix(config: dict) -> dict:
    """The shipped matrix with config's `support_matrix` deep-merged over it (new hardware,
    new formats, or a correction measured on your cluster)."""
    return deep_merge(_support_file(), config.get("support_matrix") or {})


def arch_of(config: dict, gpu: str | None) -> str:
    """The architecture a GPU type is (gpu_types.<g>.arch); no GPU type: the CPU."""
    if gpu is None:
        return "cpu"
    return config["gpu_types"][gpu].get("arch", "cpu")


def scheme_quantization(config: dict, model: str, scheme: str) -> dict | None:
    from quantstudy.core.config import effective_recipe

    return None if scheme == BASELINE else quantization(effective_recipe(config, model, scheme))


def support(config: dict, model: str, scheme: str, arch: str) -> dict:
    """How hardware `arch` serves (model, scheme) in vLLM: {status: native | emulated |
    unsupported, served_as: what it runs, format, source}. bf16 is native everywhere."""
    q = scheme_quantization(config, model, scheme)
    if q is None:
        return {"status": NATIVE, "served_as": "bf16", "format": "bf16", "source": ""}
    matrix = support_matrix(config)
    fmt = format_of(q)
    parts = [("formats", fmt)] + ([("kv_cache", kv_format(q))] if q["kv_cache"] else [])
    status, served, sources = NATIVE, [], []
    for table, name in parts:
        entry = matrix.get(table, {}).get(name)
        if entry is None:
            return {"status": None, "served_as": None, "format": fmt, "source": f"{table}.{name} not in the matrix"}
        value = entry["support"].get(arch, UNSUPPORTED)
        sources.append(entry.get("source", ""))
        if value == UNSUPPORTED:
            status = UNSUPPORTED
        elif isinstance(value, dict):  # {emulated: "as what"}
            status = EMULATED if status != UNSUPPORTED else status
            served.append(value[EMULATED])
        else:
            served.append(name if table == "formats" else f"{name} KV cache")
    label = fmt + (f" + {kv_format(q)} KV cache" if q["kv_cache"] else "")
    return {
        "status": status,
        "served_as": None if status == UNSUPPORTED else (label if status == NATIVE else " + ".join(served)),
        "format": label,
        "source": "; ".join(s for s in sources if s),
    }


def servable(config: dict, model: str, scheme: str, arch: str) -> bool:
    return support(config, model, scheme, arch)["status"] in (NATIVE, EMULATED)


def support_errors(config: dict) -> list[str]:
    """Every quantized scheme's format must be in the matrix, and every GPU type's arch too."""
    matrix = support_matrix(config)
    archs = matrix.get("architectures", {})
    errs = [
        f"config key 'gpu_types.{g}.arch': '{spec.get('arch', 'cpu')}' is not an architecture of the support matrix "
        f"(known: {', '.join(archs)}; add one under support_matrix.architectures)"
        for g, spec in (config.get("gpu_types") or {}).items()
        if spec.get("arch", "cpu") not in archs
    ]
    for model in config["models"]:
        for scheme in config["schemes"]:
            if scheme == BASELINE or scheme not in config.get("recipes", {}):
                continue
            s = support(config, model, scheme, "cpu")
            if s["status"] is None:
                q = scheme_quantization(config, model, scheme)
                errs.append(
                    f"config key 'recipes.{scheme}': the format it makes ({describe(q)}) is not in the support "
                    f"matrix ({s['source']}); add it under 'support_matrix' in the config"
                )
    return sorted(set(errs))


def describe(q: dict) -> str:
    def one(a):
        if a is None:
            return "16-bit"
        return f"{a['type']}{a['num_bits']} {a.get('strategy', '')}".strip()

    text = f"weights {one(q['weights'])}, activations {one(q['input_activations'])}"
    return text + (f", KV cache {one(q['kv_cache'])}" if q["kv_cache"] else "")


def evaluation_backend(config: dict, model: str, scheme: str) -> str:
    """lm-eval's backend for (model, scheme): vllm where the evaluation hardware serves the
    format (natively or emulated), else hf (transformers + compressed-tensors), which runs
    any format compressed-tensors can decompress. A GPU model with no evaluation.gpu_types
    runs where the cluster puts it: vllm, as the hardware is not known here."""
    from quantstudy.core.resources import model_gpus, route

    gpu = route(config, "evaluate", model, scheme)
    if gpu is None and model_gpus(config, model) > 0:
        return "vllm"
    return "vllm" if servable(config, model, scheme, arch_of(config, gpu)) else "hf"
