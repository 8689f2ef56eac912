"""Config validation: the JSON schema first, then cross-field checks against the disk.

Runs when the Snakefile is parsed, so bad input fails before any job (and any GPU hour)
is spent. Every message names the config key at fault and its value.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

BASELINE = "bf16"
QUANTIZED_SCHEMES = ("w8a8-fp", "w8a8-int", "w4a16-int")
# Paired-bootstrap settings of the summary's recovery intervals (config `significance`;
# the schema's defaults equal these, a unit test checks it). Here, not in bootstrap.py,
# so the Snakefile reads them without importing numpy.
SIGNIFICANCE_DEFAULTS = {"seed": 0, "n_resamples": 1000, "confidence": 0.95}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ConfigError(ValueError):
    """A config that cannot run; the message lists every problem found."""


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def schema_errors(config: dict, schema: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        out.append(f"config key '{_key(err.absolute_path)}': {err.message}")
    return out


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def effective_recipe(config: dict, model: str, scheme: str) -> dict:
    """The recipe of `scheme` for `model`: config.recipes deep-merged with the model's overrides."""
    base = config["recipes"][scheme]
    override = config["models"][model].get("recipe_overrides", {}).get(scheme, {})
    return deep_merge(base, override)


def linear_input_sizes(model_config: dict) -> dict[str, int]:
    """Input feature size of each kind of Linear in a Llama-style decoder."""
    hidden = model_config["hidden_size"]
    heads = model_config["num_attention_heads"]
    head_dim = model_config.get("head_dim") or hidden // heads
    return {
        "q_proj/k_proj/v_proj/gate_proj/up_proj (hidden_size)": hidden,
        "o_proj (num_attention_heads * head_dim)": heads * head_dim,
        "down_proj (intermediate_size)": model_config["intermediate_size"],
    }


def _check_model_path(name: str, spec: dict, workdir: Path, hub_access: bool) -> list[str]:
    path = spec["path"]
    local = workdir / path
    key = f"models.{name}.path"
    if hub_access and not local.exists() and _HUB_ID.match(path):
        return []  # fetched by the job; reachability is checked before any job runs
    if local.is_dir():
        if not (local / "config.json").is_file():
            return [f"config key '{key}': directory '{path}' has no config.json (not a Hugging Face checkpoint)"]
        return []
    msg = f"config key '{key}': local model directory '{path}' does not exist"
    if _HUB_ID.match(path):
        msg += (f". If '{path}' is a model hub id: jobs read models from local paths only (they run "
                f"offline), so download it first, e.g. `huggingface-cli download {path} --local-dir "
                f"models/{name}`, and set {key}: models/{name}")
    return [msg]


def semantic_errors(config: dict, workdir: Path) -> list[str]:
    errs: list[str] = []
    if BASELINE not in config["schemes"]:
        errs.append(f"config key 'schemes': {config['schemes']} lacks '{BASELINE}', the baseline of every "
                    "recovery figure")
    for name, spec in config["models"].items():
        errs += _check_model_path(name, spec, workdir, bool(config.get("hub_access")))
    for name, spec in config.get("calibration_sets", {}).items():
        if "hub_dataset" in spec and not config.get("hub_access"):
            errs.append(f"config key 'calibration_sets.{name}.hub_dataset': '{spec['hub_dataset']}' needs "
                        "hub_access: true (jobs run offline otherwise); export it to JSONL and use 'path'")
        elif "path" in spec and not (workdir / spec["path"]).is_file():
            errs.append(f"config key 'calibration_sets.{name}.path': file '{spec['path']}' does not exist")
    include = config["evaluation"]["task_include_path"]
    if include is not None and not (workdir / include).is_dir():
        errs.append(f"config key 'evaluation.task_include_path': directory '{include}' does not exist")

    for scheme in config["schemes"]:
        if scheme != BASELINE and scheme not in config["recipes"]:
            errs.append(f"config key 'schemes': scheme '{scheme}' has no entry under 'recipes'")
    for model in config["models"]:
        model_cfg = _read_model_config(config, model, workdir)
        for scheme in config["schemes"]:
            if scheme == BASELINE or scheme not in config["recipes"]:
                continue
            recipe = effective_recipe(config, model, scheme)
            errs += _recipe_errors(config, model, scheme, recipe, model_cfg)
        errs += _performance_errors(config, model, model_cfg)
    errs += _guideline_errors(config)
    return errs


def model_gpu_types(config: dict, model: str) -> list[str]:
    """GPU types a model is benchmarked on ([] without a performance block)."""
    perf = config.get("performance")
    if not perf:
        return []
    return list(config["models"][model].get("gpu_types", perf["gpu_types"]))


def model_perf_schemes(config: dict, model: str) -> list[str]:
    """Schemes a model is benchmarked in: every scheme unless models.<m>.perf_schemes narrows it."""
    only = config["models"][model].get("perf_schemes")
    return [s for s in config["schemes"] if only is None or s in only]


def _performance_errors(config: dict, model: str, model_cfg: dict | None) -> list[str]:
    perf = config.get("performance")
    if not perf:
        return [f"config key 'models.{model}.{k}': set, but there is no 'performance' block to use it"
                for k in ("gpu_types", "perf_schemes") if config["models"][model].get(k)]
    errs = [f"config key 'models.{model}.perf_schemes': '{s}' is not in 'schemes' {config['schemes']}"
            for s in config["models"][model].get("perf_schemes", []) if s not in config["schemes"]]
    known = config.get("gpu_types", {})
    key = f"models.{model}.gpu_types" if "gpu_types" in config["models"][model] else "performance.gpu_types"
    for g in model_gpu_types(config, model):
        if g not in known:
            errs.append(f"config key '{key}': GPU type '{g}' is not defined under 'gpu_types' "
                        f"(defined: {sorted(known)})")
    max_len = perf["engine"].get("max_model_len")
    positions = (model_cfg or {}).get("max_position_embeddings")
    for name, uc in perf["use_cases"].items():
        need = uc["prompt_tokens"] + uc["output_tokens"]
        if max_len and need > max_len:
            errs.append(f"config key 'performance.use_cases.{name}': prompt_tokens + output_tokens = {need} "
                        f"exceeds performance.engine.max_model_len = {max_len}")
        if positions and need > positions:
            errs.append(f"config key 'performance.use_cases.{name}': prompt_tokens + output_tokens = {need} "
                        f"exceeds max_position_embeddings = {positions} of model '{model}'")
    return errs


def _guideline_errors(config: dict) -> list[str]:
    suites = {t["suite"] for t in config["tasks"].values()}
    return [f"config key 'guideline.suites': '{s}' is not the suite of any task (suites: {sorted(suites)})"
            for s in config.get("guideline", {}).get("suites", []) if s not in suites]


def _read_model_config(config: dict, model: str, workdir: Path) -> dict | None:
    p = workdir / config["models"][model]["path"] / "config.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _recipe_errors(config, model, scheme, recipe, model_cfg) -> list[str]:
    errs = []
    key = f"recipes.{scheme}"
    if recipe["algorithm"] == "gptq" and "calibration" not in recipe:
        errs.append(f"config key '{key}.calibration': algorithm gptq needs calibration data (model {model})")
    calib = recipe.get("calibration")
    if calib and calib["set"] not in config.get("calibration_sets", {}):
        errs.append(f"config key '{key}.calibration.set': '{calib['set']}' is not defined under 'calibration_sets'")
    if recipe.get("smoothquant_strength") and not calib:
        errs.append(f"config key '{key}.smoothquant_strength': SmoothQuant needs calibration data")
    for part in ("weights", "input_activations"):
        args = recipe.get(part)
        if not args:
            continue
        if args["strategy"] == "group":
            gs = args.get("group_size")
            if gs is None:
                errs.append(f"config key '{key}.{part}.group_size': strategy 'group' needs a group_size")
            elif model_cfg is not None:
                for layer, size in linear_input_sizes(model_cfg).items():
                    if size % gs:
                        errs.append(f"config key '{key}.{part}.group_size': {gs} does not divide the input size "
                                    f"{size} of {layer} in model '{model}'")
    return errs


_TASK_DECL = re.compile(r"^(task|group|tag):[ \t]*(\S*)")


def declared_task_names(directories) -> set[str]:
    """Task, group and tag names declared by the lm-eval YAMLs under `directories`.

    A text scan (no lm-eval import, so it runs in Snakemake's own env in well under a
    second); handles `tag:` lists. Tasks registered only from Python are not seen.
    """
    names: set[str] = set()
    for d in directories:
        for y in Path(d).rglob("*.yaml"):
            try:
                lines = y.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for i, line in enumerate(lines):
                m = _TASK_DECL.match(line)
                if not m:
                    continue
                if m.group(2):
                    names.add(m.group(2).strip("'\""))
                    continue
                for nxt in lines[i + 1:]:  # a YAML list under the key
                    item = re.match(r"^\s+-\s+(\S+)\s*$", nxt)
                    if not item:
                        break
                    names.add(item.group(1).strip("'\""))
    return names


def task_errors(config: dict, workdir: Path, lm_eval_tasks_dir: str | Path | None) -> list[str]:
    """Every configured lm_eval_task must be declared locally or in lm-eval's own tasks.

    Without lm-eval's tasks folder (no local serve env, e.g. under --sdm conda before the
    env exists) a local typo cannot be told from a built-in task: nothing is checked.
    """
    if lm_eval_tasks_dir is None or not Path(lm_eval_tasks_dir).is_dir():
        return []
    include = config["evaluation"]["task_include_path"]
    dirs = [Path(lm_eval_tasks_dir)] + ([workdir / include] if include else [])
    known = declared_task_names(dirs)
    return [f"config key 'tasks.{name}.lm_eval_task': unknown task '{spec['lm_eval_task']}' (declared "
            f"neither under '{include}' nor in lm-eval's tasks)" 
            for name, spec in config["tasks"].items() if spec["lm_eval_task"] not in known]


def validate_config(config: dict, schema: dict, workdir: str | Path = ".",
                    lm_eval_tasks_dir: str | Path | None = None) -> None:
    """Raise ConfigError listing every problem, or return None when the config can run.

    lm_eval_tasks_dir: lm-eval's bundled tasks folder, to check task names against; None
    where it cannot be located (e.g. before a conda env exists): only local tasks are checked.
    """
    errs = schema_errors(config, schema)
    if not errs:  # cross-field checks assume the structure is sound
        errs = semantic_errors(config, Path(workdir)) + task_errors(config, Path(workdir), lm_eval_tasks_dir)
    if errs:
        errs = list(dict.fromkeys(errs))  # a per-model check may repeat a message
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errs))


def significance_settings(config: dict) -> dict:
    """The config's `significance` block with defaults filled in."""
    return {**SIGNIFICANCE_DEFAULTS, **(config.get("significance") or {})}
