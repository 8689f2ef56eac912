"""Config validation: the JSON schema first, then cross-field checks against the disk.

Runs when the Snakefile is parsed, so bad input fails before any job (and any GPU hour)
is spent. Every message names the config key at fault and its value.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from pathlib import Path

BASELINE = "bf16"
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
        err = _deepest(err)
        out.append(f"config key '{_key(err.absolute_path)}': {err.message}")
    return out


def fill_defaults(config, schema: dict, _node: dict | None = None):
    """Every `default:` of the schema written into the config, in place, once, at validation:
    the schema is the one place a default lives, and every rule and step reads a complete
    config. Follows properties, $ref, additionalProperties (maps such as tasks.<name>) and
    array items; an absent block gets its own default (e.g. `significance: {}`) and then its
    keys' defaults. Run only on a config that passed the schema (its shapes are right)."""
    node = resolve_ref(schema, _node if _node is not None else schema)
    if isinstance(config, dict):
        props = node.get("properties", {})
        for key, sub in props.items():
            sub = resolve_ref(schema, sub)
            if key not in config and "default" in sub:
                config[key] = copy.deepcopy(sub["default"])
            if key in config:
                fill_defaults(config[key], schema, sub)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in config.items():
                if key not in props:
                    fill_defaults(value, schema, extra)
    elif isinstance(config, list) and isinstance(node.get("items"), dict):
        for item in config:
            fill_defaults(item, schema, node["items"])
    return config


def resolve_ref(schema: dict, node: dict) -> dict:
    """A schema node with its local $ref ("#/$defs/...") followed; its own keys win (also
    configload's, for --config overrides)."""
    while isinstance(node, dict) and "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _deepest(err):
    """For a oneOf/anyOf failure, the error of the alternative that came closest (so the
    message names the nested key at fault, not the whole block)."""
    while err.context:  # the alternative that got furthest into the value failed deepest
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def effective_recipe(config: dict, model: str, scheme: str) -> dict:
    """The recipe of `scheme` for `model`: config.recipes with the model's override merged in
    (quantstudy.core.schemes.merge_override)."""
    from quantstudy.core.schemes import merge_override

    base = config["recipes"][scheme]
    override = config["models"][model].get("recipe_overrides", {}).get(scheme, {})
    return merge_override(base, override)


# config.json spells the same sizes differently per architecture family (GPT-2's n_embd,
# T5's d_model, ...) and multimodal checkpoints keep the text model's under a sub-config.
SIZE_ALIASES = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim", "hidden_dim", "model_dim"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads", "encoder_attention_heads"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size", "d_ff", "hidden_dim_ffn"),
    "head_dim": ("head_dim",),
    "max_position_embeddings": (
        "max_position_embeddings",
        "n_positions",
        "max_sequence_length",
        "seq_length",
        "max_seq_len",
        "n_ctx",
    ),
}
SUB_CONFIGS = ("text_config", "llm_config", "language_config", "thinker_config")


def model_size(model_config: dict, name: str):
    """A size of the (text) decoder under any of its spellings, or None."""
    for cfg in [model_config] + [model_config.get(k) for k in SUB_CONFIGS]:
        if isinstance(cfg, dict):
            for key in SIZE_ALIASES[name]:
                if isinstance(cfg.get(key), int) and not isinstance(cfg.get(key), bool):
                    return cfg[key]
    return None


def linear_input_sizes(model_config: dict) -> dict[str, int]:
    """Input feature size of each kind of Linear in a Llama-style decoder ({} where config.json
    does not say: the caller reports that it cannot check)."""
    hidden = model_size(model_config, "hidden_size")
    heads = model_size(model_config, "num_attention_heads")
    if hidden is None or heads is None:
        return {}
    head_dim = model_size(model_config, "head_dim") or hidden // heads
    inter = model_size(model_config, "intermediate_size") or 4 * hidden  # GPT-2: n_inner null = 4 x n_embd
    return {
        "q_proj/k_proj/v_proj/gate_proj/up_proj (hidden_size)": hidden,
        "o_proj (num_attention_heads * head_dim)": heads * head_dim,
        "down_proj (intermediate_size)": inter,
    }


# Any of these makes a tokenizer loadable (fast, sentencepiece, BPE, WordPiece, tiktoken).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "tokenizer.tiktoken",
    "tiktoken.model",
)


def _near(name: str, folder: Path) -> str:
    try:
        names = [p.name for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(f'{folder.name}/{c}') for c in close)}?)" if close else ""


def apply_gguf_paths(config: dict) -> list[str]:
    """Give every model with a `gguf:` source its prepared checkpoint dir (models/<name>,
    written by rule prepare_model) as `path`, which every other rule reads. Errors for a
    model that names both (the rule writes one fixed place)."""
    from quantstudy.prepare.gguf import PREPARED_DIR

    errs = []
    models = config.get("models")
    for name, spec in models.items() if isinstance(models, dict) else []:
        if not isinstance(spec, dict) or "gguf" not in spec:
            continue
        want = PREPARED_DIR.format(model=name)
        if spec.setdefault("path", want) != want:
            errs.append(
                f"config key 'models.{name}.path': '{spec['path']}' given beside 'gguf'; rule "
                f"prepare_model writes a GGUF model's checkpoint to '{want}': remove the path"
            )
    return errs


def _check_gguf(name: str, spec: dict, workdir: Path, site_dirs, notes: list) -> list[str]:
    from quantstudy.prepare.gguf import GGUFError, describe, read_metadata, source_path

    key = f"models.{name}.gguf"
    src = spec["gguf"]
    if site_dirs is None and "package" in src:
        notes.append(
            f"{key}: the env that holds package '{src['package']}' is not built yet; its file is "
            "looked up by the prepare_model job"
        )
        return []
    path = source_path(src, site_dirs or [], workdir)
    if path is None:
        where = (
            ""
            if "path" in src
            else f" (looked in {', '.join(map(str, site_dirs)) or 'no site-packages'}: is it in envs/quantize.yaml?)"
        )
        return [f"config key '{key}': GGUF file {describe(src)} not found{where}"]
    try:
        read_metadata(path)
    except GGUFError as e:
        return [f"config key '{key}': {e}"]
    return []


def _check_model_path(
    name: str, spec: dict, workdir: Path, hub_access: bool, notes: list, gguf_site_dirs=None
) -> list[str]:
    if "gguf" in spec:
        errs = _check_gguf(name, spec, workdir, gguf_site_dirs, notes)
        if errs or not (workdir / spec["path"]).is_dir():
            return errs  # prepared by rule prepare_model; checked as a checkpoint once it exists
    path = spec["path"]
    local = workdir / path
    key = f"models.{name}.path"
    if hub_access and not local.exists() and _HUB_ID.match(path):
        owner, rest = path.split("/", 1)
        if (workdir / owner).is_dir():
            # With hub_access a job would try to download a typo as a hub model.
            return [
                f"config key '{key}': '{path}' does not exist locally, and is taken as a hub id only "
                f"because it looks like one; but '{owner}/' is a local directory, so it is probably a "
                f"mistyped local path{_near(rest, workdir / owner)}. Fix the path, or, for a hub "
                f"model, use a name that is not also a local folder"
            ]
        return []  # fetched by the job; reachability is checked before any job runs
    if local.is_file():
        return [f"config key '{key}': '{path}' is a file, expected a model directory"]
    if local.is_dir():
        return _model_dir_errors(key, path, local, notes)
    msg = f"config key '{key}': local model directory '{path}' does not exist"
    if _HUB_ID.match(path):
        msg += (
            f". If '{path}' is a model hub id: jobs read models from local paths only (they run "
            f"offline), so download it first, e.g. `huggingface-cli download {path} --local-dir "
            f"models/{name}`, and set {key}: models/{name}"
        )
    return [msg]


def _model_dir_errors(key: str, path: str, local: Path, notes: list) -> list[str]:
    from quantstudy.core import knownnames

    cfg_file = local / "config.json"
    if not cfg_file.is_file():
        return [f"config key '{key}': directory '{path}' has no config.json (not a Hugging Face checkpoint)"]
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as e:
        return [f"config key '{key}': '{path}/config.json' is not valid JSON ({e})"]
    if not isinstance(cfg, dict):
        return [f"config key '{key}': '{path}/config.json' is not a JSON object"]
    errs = []
    if not any((local / f).is_file() for f in TOKENIZER_FILES):
        errs.append(
            f"config key '{key}': '{path}' has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); every job loads one"
        )
    archs = cfg.get("architectures")
    if not archs:
        notes.append(
            f"models: '{path}/config.json' names no architectures; whether vLLM and transformers "
            "can load it is not checked"
        )
    else:
        known = knownnames.architectures()
        for a in archs if isinstance(archs, list) else [archs]:
            if a not in known:
                close = difflib.get_close_matches(str(a), known, n=1)
                errs.append(
                    f"config key '{key}': architecture '{a}' of '{path}/config.json' is known to "
                    f"neither vLLM nor transformers (as pinned in envs/serve.yaml)"
                    + (f"; did you mean '{close[0]}'?" if close else "")
                )
    return errs


def recipe_override_errors(config: dict, schema: dict) -> list[str]:
    """Validate each models.<m>.recipe_overrides.<scheme> as what it becomes: the recipe
    deep-merged with it, against the recipe schema (closed: an unknown key is an error), so
    a typo or a bad value there cannot be merged in and then ignored."""
    import jsonschema

    validator = jsonschema.Draft202012Validator({**schema["$defs"]["recipe"], "$defs": schema["$defs"]})
    errs = []
    for model, spec in config["models"].items():
        for scheme, override in spec.get("recipe_overrides", {}).items():
            key = f"models.{model}.recipe_overrides.{scheme}"
            if scheme not in config.get("recipes", {}):
                errs.append(f"config key '{key}': there is no recipe '{scheme}' under 'recipes' to override")
                continue
            base = {
                (tuple(e.absolute_path), e.message)
                for e in map(_deepest, validator.iter_errors(config["recipes"][scheme]))
            }
            merged = effective_recipe(config, model, scheme)
            present = {name for item in config["recipes"][scheme].get("modifiers", []) for name in item}
            if isinstance(override.get("modifiers"), dict):
                errs += [
                    f"config key '{key}.modifiers.{name}': recipes.{scheme} has no {name} to merge into "
                    f"(it has: {', '.join(sorted(present))}); give the whole list to replace its modifiers"
                    for name in override["modifiers"]
                    if name not in present
                ]
            for e in sorted(
                map(_deepest, validator.iter_errors(merged)), key=lambda e: list(map(str, e.absolute_path))
            ):
                if (tuple(e.absolute_path), e.message) in base:
                    continue  # the recipe's own error, reported under recipes.<scheme>
                sub = _key(e.absolute_path)
                errs.append(
                    f"config key '{key}{'.' + sub if e.absolute_path else ''}': {e.message} "
                    f"(recipes.{scheme} merged with this override)"
                )
    return errs


def output_errors(config: dict, workdir: Path) -> list[str]:
    """A file where the workflow keeps a directory, or a checkpoint folder the quantize
    rule did not finish: Snakemake would take either as a finished output."""
    from quantstudy.core import paths

    results = workdir / paths.RESULTS
    if results.exists() and not results.is_dir():
        return [f"'{paths.RESULTS}' is a file, where the workflow writes its results directory; move it away"]
    errs = []
    for model in config["models"]:
        for scheme in config["schemes"]:
            if scheme == BASELINE:
                continue
            rel = paths.QUANTIZED_MODEL.format(model=model, scheme=scheme)
            p = workdir / rel
            for parent in reversed(Path(rel).parents[:-1]):
                if (workdir / parent).is_file():
                    errs.append(f"'{parent}' is a file, where a directory of checkpoints belongs; move it away")
                    break
            else:
                if p.is_file() or (p.is_symlink() and not p.exists()):
                    errs.append(
                        f"'{rel}' is a file, where the checkpoint directory of ({model}, {scheme}) "
                        "belongs (a stale file would be taken as the finished checkpoint); move it away"
                    )
                elif p.is_dir() and not (p / "quantstudy.json").is_file():
                    errs.append(
                        f"'{rel}' is a directory without quantstudy.json, so not a checkpoint the "
                        "quantize rule finished (it writes that file with every checkpoint), yet "
                        "it would be evaluated as one; move it away"
                    )
    return list(dict.fromkeys(errs))


def _path_kind_error(key: str, path: str, local: Path, want: str) -> str | None:
    if want == "file" and local.is_dir():
        return f"config key '{key}': '{path}' is a directory, expected a file"
    if want == "dir" and local.is_file():
        return f"config key '{key}': '{path}' is a file, expected a directory"
    if not local.exists():
        return f"config key '{key}': {'file' if want == 'file' else 'directory'} '{path}' does not exist"
    return None


def _calibration_errors(config: dict, workdir: Path) -> list[str]:
    from quantstudy.quantize.calibration import calibration_file_problems

    need: dict[str, int] = {}  # calibration set -> the most samples any recipe asks of it
    for model in config["models"]:
        for scheme in config["schemes"]:
            if scheme in config["recipes"]:
                cal = effective_recipe(config, model, scheme).get("calibration")
                if cal:
                    need[cal["set"]] = max(need.get(cal["set"], 0), cal["num_samples"])
    errs = []
    for name, spec in config.get("calibration_sets", {}).items():
        key = f"calibration_sets.{name}"
        if "hub_dataset" in spec and not config.get("hub_access"):
            errs.append(
                f"config key '{key}.hub_dataset': '{spec['hub_dataset']}' needs "
                "hub_access: true (jobs run offline otherwise); export it to JSONL and use 'path'"
            )
        elif "path" in spec:
            for opt in ("split", "messages_field"):
                if opt in spec:  # quantize reads a local file's 'messages' whole: it would be ignored
                    errs.append(
                        f"config key '{key}.{opt}': applies to hub_dataset only; a local file is read "
                        "whole, each line's chat from 'messages'"
                    )
            local = workdir / spec["path"]
            problem = _path_kind_error(f"{key}.path", spec["path"], local, "file")
            if problem:
                errs.append(problem)
            elif name in need:  # an unused set costs no job
                for p in calibration_file_problems(local, need[name]):
                    errs.append(f"config key '{key}.path': " + p.replace(str(local), spec["path"], 1))
    return errs


def _run_settings(task: dict) -> dict:
    """What makes two lm-eval runs of the same task differ (not how they are reported)."""
    return {k: v for k, v in task.items() if k not in ("suite", "metrics", "normalize")}


def _task_list_errors(config: dict) -> list[str]:
    errs = []
    by_task: dict = {}
    for name, spec in config["tasks"].items():
        same = by_task.setdefault(spec["lm_eval_task"], [])
        for other in same:
            o = config["tasks"][other]
            if o["suite"] == spec["suite"]:
                errs.append(
                    f"config key 'tasks.{name}.lm_eval_task': '{spec['lm_eval_task']}' is also the task "
                    f"of 'tasks.{other}', in the same suite '{spec['suite']}': the suite average would "
                    "count it twice"
                )
            elif _run_settings(o) == _run_settings(spec):
                errs.append(
                    f"config key 'tasks.{name}.lm_eval_task': '{spec['lm_eval_task']}' is also the task "
                    f"of 'tasks.{other}', with the same settings: it would be evaluated twice"
                )
        same.append(name)
    for name in config.get("skipped_tasks", {}):
        if name in config["tasks"]:
            errs.append(
                f"config key 'skipped_tasks.{name}': '{name}' is also under 'tasks', so it would run and "
                "be reported as not run; remove it from one of the two"
            )
    return errs


def _engine_errors(config: dict) -> list[str]:
    from quantstudy.core import knownnames

    known = knownnames.engine_args()
    errs = []
    blocks = [(b, (config.get(b) or {}).get("engine", {})) for b in ("evaluation", "performance")]
    blocks += [(f"tasks.{t}", spec.get("engine", {})) for t, spec in config["tasks"].items()]
    for block, engine in blocks:
        for arg in engine:
            if arg not in known:
                close = difflib.get_close_matches(arg, known, n=1)
                errs.append(
                    f"config key '{block}.engine.{arg}': not an engine argument of vLLM (as pinned in "
                    f"envs/serve.yaml)" + (f"; did you mean '{close[0]}'?" if close else "")
                )
    return errs


def _length_errors(config: dict, model: str, model_cfg: dict | None) -> list[str]:
    positions = model_size(model_cfg or {}, "max_position_embeddings")
    errs = []
    blocks = [(b, (config.get(b) or {}).get("engine", {})) for b in ("evaluation", "performance")]
    blocks += [(f"tasks.{t}", spec.get("engine", {})) for t, spec in config["tasks"].items()]
    for block, engine in blocks:
        max_len = engine.get("max_model_len")
        if positions and max_len and max_len > positions:
            errs.append(
                f"config key '{block}.engine.max_model_len': {max_len} exceeds max_position_embeddings "
                f"= {positions} of model '{model}' (vLLM refuses to start)"
            )
    for scheme in config["schemes"]:
        if scheme in config["recipes"]:
            cal = effective_recipe(config, model, scheme).get("calibration")
            if cal and positions and cal["max_seq_length"] > positions:
                errs.append(
                    f"config key 'recipes.{scheme}.calibration.max_seq_length': {cal['max_seq_length']} "
                    f"exceeds max_position_embeddings = {positions} of model '{model}'"
                )
    sim = config.get("similarity")
    if sim:
        limit = config["evaluation"]["engine"].get("max_model_len") or positions
        if limit and sim["max_tokens"] >= limit:
            errs.append(
                f"config key 'similarity.max_tokens': {sim['max_tokens']} leaves no room for the prompt "
                f"within max_model_len = {limit} (evaluation.engine, model '{model}')"
            )
    return errs


def semantic_errors(config: dict, workdir: Path, notes: list | None = None, gguf_site_dirs=None) -> list[str]:
    notes = [] if notes is None else notes
    errs: list[str] = []
    if BASELINE not in config["schemes"]:
        errs.append(
            f"config key 'schemes': {config['schemes']} lacks '{BASELINE}', the baseline of every recovery figure"
        )
    for name, spec in config["models"].items():
        errs += _check_model_path(name, spec, workdir, bool(config.get("hub_access")), notes, gguf_site_dirs)
    errs += _calibration_errors(config, workdir)
    include = config["evaluation"]["task_include_path"]
    if include is not None:
        problem = _path_kind_error("evaluation.task_include_path", include, workdir / include, "dir")
        if problem:
            errs.append(problem)
    errs += _task_list_errors(config) + _engine_errors(config)

    for scheme in config["schemes"]:
        if scheme != BASELINE and scheme not in config["recipes"]:
            close = difflib.get_close_matches(scheme, [BASELINE, *config["recipes"]], n=1)
            errs.append(
                f"config key 'schemes': scheme '{scheme}' has no entry under 'recipes'"
                + (f"; did you mean '{close[0]}'?" if close else "")
            )
    for model in config["models"]:
        model_cfg = _read_model_config(config, model, workdir, gguf_site_dirs)
        for scheme in config["schemes"]:
            if scheme == BASELINE or scheme not in config["recipes"]:
                continue
            recipe = effective_recipe(config, model, scheme)
            found = _recipe_errors(config, model, scheme, recipe, model_cfg, notes)
            if found and scheme in config["models"][model].get("recipe_overrides", {}):
                base = _recipe_errors(config, model, scheme, config["recipes"][scheme], model_cfg, [])
                # what only the model's override brings in is named there
                found = [
                    e
                    if e in base
                    else e.replace("config key '", f"config key 'models.{model}.recipe_overrides.{scheme}' -> '", 1)
                    for e in found
                ]
            errs += found
        errs += _performance_errors(config, model, model_cfg)
        errs += _placement_errors(config, model)
        errs += _length_errors(config, model, model_cfg)
    errs += _guideline_errors(config) + _slo_errors(config)
    if not errs:  # the formats of well-formed recipes, on the hardware the config names
        from quantstudy.core.schemes import support_errors

        errs += support_errors(config)
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
        return [
            f"config key 'models.{model}.{k}': set, but there is no 'performance' block to use it"
            for k in ("gpu_types", "perf_schemes")
            if config["models"][model].get(k)
        ]
    errs = [
        f"config key 'models.{model}.perf_schemes': '{s}' is not in 'schemes' {config['schemes']}"
        for s in config["models"][model].get("perf_schemes", [])
        if s not in config["schemes"]
    ]
    known = config.get("gpu_types", {})
    key = f"models.{model}.gpu_types" if "gpu_types" in config["models"][model] else "performance.gpu_types"
    for g in model_gpu_types(config, model):
        if g not in known:
            errs.append(
                f"config key '{key}': GPU type '{g}' is not defined under 'gpu_types' (defined: {sorted(known)})"
            )
    max_len = perf["engine"].get("max_model_len")
    positions = model_size(model_cfg or {}, "max_position_embeddings")
    for name, uc in perf["use_cases"].items():
        need = uc["prompt_tokens"] + uc["output_tokens"]
        if max_len and need > max_len:
            errs.append(
                f"config key 'performance.use_cases.{name}': prompt_tokens + output_tokens = {need} "
                f"exceeds performance.engine.max_model_len = {max_len}"
            )
        if positions and need > positions:
            errs.append(
                f"config key 'performance.use_cases.{name}': prompt_tokens + output_tokens = {need} "
                f"exceeds max_position_embeddings = {positions} of model '{model}'"
            )
    return errs


def _placement_errors(config: dict, model: str) -> list[str]:
    """Every GPU job of `model` must fit a GPU type it may run on (else SLURM would start it
    where it runs out of memory, or hold it pending forever)."""
    from quantstudy.core.resources import fit_problem, model_gpus, route

    if model_gpus(config, model) == 0:
        return []
    known = config.get("gpu_types", {})
    order = config["evaluation"].get("gpu_types", [])
    errs = [
        f"config key 'evaluation.gpu_types': GPU type '{g}' is not defined under 'gpu_types' (defined: {sorted(known)})"
        for g in order
        if g not in known
    ]
    if errs or not order:
        return errs
    rules = ["quantize", "evaluate"] + (["generate"] if config.get("similarity") else [])
    for scheme in config["schemes"]:
        for rule in rules:
            if rule == "quantize" and scheme == BASELINE:
                continue
            if route(config, rule, model, scheme) is None:
                why = "; ".join(f"{g}: {fit_problem(config, rule, model, scheme, g)}" for g in order)
                errs.append(
                    f"config key 'evaluation.gpu_types': no GPU type fits the {rule} jobs of "
                    f"({model}, {scheme}) ({why}); add a GPU type that fits, or drop the scheme"
                )
    if config.get("performance"):
        from quantstudy.core.schemes import arch_of, servable

        for gpu in model_gpu_types(config, model):
            for scheme in model_perf_schemes(config, model):
                if gpu in known and not servable(config, model, scheme, arch_of(config, gpu)):
                    continue  # not benchmarked there (the support matrix)
                problem = gpu in known and fit_problem(config, "perf", model, scheme, gpu)
                if problem:
                    errs.append(
                        f"config key 'models.{model}.gpu_types': ({model}, {scheme}) does not fit "
                        f"'{gpu}': {problem}; narrow models.{model}.gpu_types or perf_schemes"
                    )
    return errs


SLO_TARGETS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")


def _slo_errors(config: dict) -> list[str]:
    """An slo with no latency target would search for nothing (every rate meets it)."""
    use_cases = (config.get("performance") or {}).get("use_cases", {})
    return [
        f"config key 'performance.use_cases.{name}.slo': sets no latency target (give at least one of "
        f"{', '.join(SLO_TARGETS)})"
        for name, uc in use_cases.items()
        if "slo" in uc and not any(uc["slo"].get(k) is not None for k in SLO_TARGETS)
    ]


def _guideline_errors(config: dict) -> list[str]:
    suites = {t["suite"] for t in config["tasks"].values()}
    return [
        f"config key 'guideline.suites': '{s}' is not the suite of any task (suites: {sorted(suites)})"
        for s in config.get("guideline", {}).get("suites", [])
        if s not in suites
    ]


def _read_model_config(config: dict, model: str, workdir: Path, gguf_site_dirs=None) -> dict | None:
    """config.json of the model; for a GGUF model not prepared yet, the sizes its header gives."""
    spec = config["models"][model]
    p = workdir / spec["path"] / "config.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        pass
    if "gguf" in spec:
        from quantstudy.prepare.gguf import GGUFError, model_config, read_metadata, source_path

        src = source_path(spec["gguf"], gguf_site_dirs or [], workdir)
        try:
            return model_config(read_metadata(src)) if src else None
        except GGUFError:
            return None
    return None


def _recipe_errors(config, model, scheme, recipe, model_cfg, notes) -> list[str]:
    from quantstudy.core import schemes

    key = f"recipes.{scheme}"
    errs = schemes.recipe_errors(key, recipe)
    if errs:
        return errs
    calib = recipe.get("calibration")
    if schemes.needs_calibration(recipe) and not calib:
        errs.append(
            f"config key '{key}.calibration': the recipe needs calibration data (a data-driven modifier, "
            f"static activation scales or a KV-cache scheme), but has no calibration block (model {model})"
        )
    if calib and calib["set"] not in config.get("calibration_sets", {}):
        errs.append(f"config key '{key}.calibration.set': '{calib['set']}' is not defined under 'calibration_sets'")
    q = schemes.quantization(recipe)
    for part in ("weights", "input_activations"):
        args = q.get(part)
        if not args or args.get("strategy") != "group":
            continue
        gs = args.get("group_size")
        if gs is None:
            errs.append(f"config key '{key}.modifiers': {part} strategy 'group' needs a group_size")
        elif not isinstance(gs, int) or gs < 1:
            errs.append(f"config key '{key}.modifiers': {part} group_size {gs} is not a positive integer")
        elif model_cfg is not None:
            sizes = linear_input_sizes(model_cfg)
            if not sizes:
                notes.append(
                    f"{key} {part} group_size: config.json of model '{model}' gives no hidden size or "
                    f"head count (looked for {', '.join(SIZE_ALIASES['hidden_size'])}, also under "
                    f"{', '.join(SUB_CONFIGS)}); whether {gs} divides its layers is not checked"
                )
            bad = [(layer, size) for layer, size in sizes.items() if size % gs]
            if bad:
                from quantstudy.prepare.gguf import dividing_group_sizes

                fits = dividing_group_sizes(sizes.values())
                errs.append(
                    f"config key '{key}.modifiers': {part} group_size {gs} does not divide the input size "
                    + ", ".join(f"{size} of {layer}" for layer, size in bad)
                    + f" in model '{model}'; "
                    + (
                        f"group sizes that divide every quantized Linear's input: {fits}"
                        if fits
                        else "no power-of-two group size from 16 divides them all"
                    )
                    + f" (set it per model: models.{model}.recipe_overrides.{scheme}.modifiers, with config_groups)"
                )
    return errs


def declared_task_names(directories) -> set[str]:
    """Task, group and tag names declared by the lm-eval YAMLs under `directories` (a text
    scan, no lm-eval import: quantstudy/evaluate/taskindex.py)."""
    from quantstudy.evaluate.taskindex import TaskIndex

    return TaskIndex(directories).names


def task_errors(config: dict, workdir: Path, lm_eval_tasks_dir: str | Path | None) -> list[str]:
    """Every configured lm_eval_task must be declared locally or in lm-eval's own tasks, and
    produce the configured metrics (else every evaluate job of it fails after its whole run).

    Without lm-eval's tasks folder (no local serve env, e.g. under --sdm conda before the
    env exists) a local typo cannot be told from a built-in task: nothing is checked.
    """
    from quantstudy.evaluate.taskindex import TaskIndex

    if lm_eval_tasks_dir is None or not Path(lm_eval_tasks_dir).is_dir():
        return []
    include = config["evaluation"]["task_include_path"]
    index = TaskIndex([Path(lm_eval_tasks_dir)] + ([workdir / include] if include else []))
    errs = []
    for name, spec in config["tasks"].items():
        task = spec["lm_eval_task"]
        if task not in index.names:
            errs.append(
                f"config key 'tasks.{name}.lm_eval_task': unknown task '{task}' (declared "
                f"neither under '{include}' nor in lm-eval's tasks)"
            )
            continue
        produced = index.keys(task)
        for i, metric in enumerate(spec["metrics"]):
            if produced is not None and metric not in produced:
                close = difflib.get_close_matches(metric, sorted(produced), n=1)
                errs.append(
                    f"config key 'tasks.{name}.metrics.{i}': '{metric}' is not a metric of lm-eval task "
                    f"'{task}' (its task YAML declares {sorted(produced)})"
                    + (f"; did you mean '{close[0]}'?" if close else "")
                )
    return errs


def validate_config(
    config: dict,
    schema: dict,
    workdir: str | Path = ".",
    lm_eval_tasks_dir: str | Path | None = None,
    gguf_site_dirs=None,
) -> None:
    """Raise ConfigError listing every problem; when the config can run, return the notes on
    what could not be checked (e.g. sizes config.json does not give).

    lm_eval_tasks_dir: lm-eval's bundled tasks folder, to check task names against; None
    where it cannot be located (e.g. before a conda env exists): only local tasks are checked.
    gguf_site_dirs: site-packages where a `models.<m>.gguf: {package: ...}` file is looked up
    (the quantize env's); None where that env is not known: such a source is not checked.
    """
    errs = schema_errors(config, schema)
    if not errs:
        errs = recipe_override_errors(config, schema)
    if not errs:
        fill_defaults(config, schema)
    notes: list[str] = []
    if not errs:  # cross-field checks assume the structure is sound
        errs = semantic_errors(config, Path(workdir), notes, gguf_site_dirs) + task_errors(
            config, Path(workdir), lm_eval_tasks_dir
        )
    if errs:
        errs = list(dict.fromkeys(errs))  # a per-model check may repeat a message
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errs))
    return list(dict.fromkeys(notes))
