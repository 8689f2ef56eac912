"""Bad input never costs a job, and never silently changes a result (issue 13).

A table of mistaken configs and inputs, each a dry run of the real workflow on one shared
throwaway copy: Snakemake must exit non-zero, the message must name the key, file (and
line) or value at fault, and no results/ may appear. Configs are separate --configfile
files in a temp dir; files a case needs inside the copy are removed after it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.workspace import copy_workflow

from .conftest import Workflow


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Workflow:
    return Workflow(copy_workflow(tmp_path_factory.mktemp("badinput") / "wf"))


@dataclass
class Case:
    id: str
    expect: list[str]  # each must appear in Snakemake's output
    mutate: Callable | None = None  # edits a copy of config/config.yaml (a dict)
    text: str | None = None  # or: the --configfile's raw text
    files: dict = field(default_factory=dict)  # path in the copy -> text, None (a directory) or a callable(wf_dir)
    tmpfiles: dict = field(default_factory=dict)  # name in the case's tmp dir -> text; "{tmp}" in config values
    args: list = field(default_factory=list)
    default_config_text: Callable | None = None  # rewrites the copy's config/config.yaml (restored after)
    cwd_elsewhere: bool = False


def at(cfg, dotted, value):
    *head, last = dotted.split(".")
    node = cfg
    for k in head:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[int(k)]
    node[last if isinstance(node, dict) else int(last)] = value
    return cfg


def override(scheme, value):
    return lambda c: at(c, f"models.tiny-llama.recipe_overrides.{scheme}", value)


def model_variant(edit_config=None, drop=()):
    """A copy of the fixture model in the case's tmp dir, its config.json edited."""

    def make(tmp: Path, wf_dir: Path) -> str:
        d = tmp / "model"
        shutil.copytree(wf_dir / "fixtures/tiny-llama", d)
        for f in drop:
            (d / f).unlink()
        if edit_config:
            cfg = json.loads((d / "config.json").read_text())
            edit_config(cfg)
            (d / "config.json").write_text(json.dumps(cfg))
        return str(d)

    return make


def gpt2_layout(c):
    h = c.pop("hidden_size")
    c.update(n_embd=96 if h else h, n_head=c.pop("num_attention_heads"), n_inner=c.pop("intermediate_size"))
    c.pop("head_dim")


def text_config_layout(c):
    c["text_config"] = {k: c.pop(k) for k in ("hidden_size", "num_attention_heads", "intermediate_size", "head_dim")}
    c["text_config"].update(hidden_size=96, head_dim=24)


CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ho"}]})
CAL = "calibration_sets.fixture-chat.path"


def calib(text):
    return {"tmpfiles": {"cal.jsonl": text}, "mutate": lambda c: at(c, CAL, "{tmp}/cal.jsonl")}


def text_with(base_text, old, new):
    assert old in base_text, old
    return base_text.replace(old, new, 1)


CASES = [
    # -- silent no-ops: recipe_overrides validated as the merged recipe ----------------------------
    Case(
        "override-typo",
        ["models.tiny-llama.recipe_overrides.w8a8-int", "dampning_frac"],
        override("w8a8-int", {"dampning_frac": 0.1}),
    ),
    Case(
        "override-modifier-argument-typo",
        ["models.tiny-llama.recipe_overrides.w8a8-int", "GPTQModifier.dampning_frac", "no argument"],
        override("w8a8-int", {"modifiers": {"GPTQModifier": {"dampning_frac": 0.1}}}),
    ),
    Case(
        "override-group-size-0",
        ["models.tiny-llama.recipe_overrides.w4a16-int", "group_size 0"],
        override(
            "w4a16-int", {"modifiers": {"GPTQModifier": {"config_groups": {"group_0": {"weights": {"group_size": 0}}}}}}
        ),
    ),
    Case(
        "override-modifier-scalar",
        ["recipe_overrides.w8a8-int.modifiers.1.GPTQModifier", "8"],
        override("w8a8-int", {"modifiers": {"GPTQModifier": 8}}),
    ),
    Case(
        "override-old-recipe-key",
        ["recipe_overrides.w8a8-int", "'algorithm'"],
        override("w8a8-int", {"algorithm": "foo"}),
    ),
    Case(
        "override-num-samples-string",
        ["recipe_overrides.w8a8-int.calibration.num_samples", "'128'"],
        override("w8a8-int", {"calibration": {"num_samples": "128"}}),
    ),
    Case("override-bf16", ["recipe_overrides.bf16", "no recipe"], override("bf16", {"calibration": {}})),
    Case(
        "override-modifier-the-recipe-lacks",
        ["recipe_overrides.w8a8-fp.modifiers.SmoothQuantModifier", "no SmoothQuantModifier to merge into"],
        override("w8a8-fp", {"modifiers": {"SmoothQuantModifier": {"smoothing_strength": 0.5}}}),
    ),
    Case(
        "override-activation-bits",
        ["recipes.w8a8-int", "int8 channel", "int3 token", "not in the support matrix"],
        override(
            "w8a8-int",
            {"modifiers": {"GPTQModifier": {"config_groups": {"group_0": {"input_activations": {"num_bits": 3}}}}}},
        ),
    ),
    Case(
        "override-calibration-typo",
        ["recipe_overrides.w4a16-int.calibration", "sets"],
        override("w4a16-int", {"calibration": {"sets": "other"}}),
    ),
    Case("override-not-a-mapping", ["recipe_overrides.w8a8-fp", "mse"], override("w8a8-fp", "mse")),
    # -- recipes: what the pinned llmcompressor would refuse, or silently drop ----------------------
    Case(
        "recipe-unknown-modifier",
        ["recipes.w8a16-int.modifiers[0]", "no modifier 'QuantisationModifier'", "QuantizationModifier"],
        lambda c: at(c, "recipes.w8a16-int.modifiers", [{"QuantisationModifier": {"scheme": "W8A16"}}]),
    ),
    Case(
        "recipe-unknown-argument",
        ["recipes.w4a16-awq.modifiers[0].AWQModifier.duo_scale", "no argument 'duo_scale'", "duo_scaling"],
        lambda c: at(c, "recipes.w4a16-awq.modifiers.0", {"AWQModifier": {"duo_scale": True}}),
    ),
    Case(
        "recipe-unknown-preset",
        ["recipes.w8a16-int.modifiers[0].QuantizationModifier.scheme", "'W8A61' is not a preset scheme"],
        lambda c: at(c, "recipes.w8a16-int.modifiers.0.QuantizationModifier.scheme", "W8A61"),
    ),
    Case(
        "recipe-quantizes-nothing",
        ["recipes.w8a16-int.modifiers", "no modifier quantizes"],
        lambda c: at(c, "recipes.w8a16-int.modifiers", [{"SmoothQuantModifier": {"smoothing_strength": 0.5}}]),
    ),
    Case(
        "recipe-calibration-missing",
        ["recipes.w4a16-awq.calibration", "needs calibration data"],
        lambda c: c["recipes"]["w4a16-awq"].pop("calibration") and c,
    ),
    Case(
        "recipe-stage-yaml-layout",
        ["recipes.w8a16-int", "quant_stage"],
        lambda c: at(c, "recipes.w8a16-int", {"quant_stage": {"quant_modifiers": {"QuantizationModifier": {}}}}),
    ),
    Case(
        "gpu-arch-unknown",
        ["gpu_types.cpu.arch", "'sm999' is not an architecture of the support matrix"],
        lambda c: at(c, "gpu_types.cpu.arch", "sm999"),
    ),
    Case(
        "support-matrix-bad-status",
        ["support_matrix.formats.w8a16-int.support.cpu", "'maybe'"],
        lambda c: at(c, "support_matrix", {"formats": {"w8a16-int": {"support": {"cpu": "maybe"}}}}),
    ),
    # -- silent no-ops: rule names under resources -------------------------------------------------
    Case("resources-quantise", ["resources", "quantise"], lambda c: at(c, "resources.quantise", {"mem_mb": 1})),
    Case("resources-evalute", ["resources", "evalute"], lambda c: at(c, "resources.evalute", {"threads": 1})),
    Case(
        "model-resources-perff",
        ["models.tiny-llama.resources", "perff"],
        lambda c: at(c, "models.tiny-llama.resources", {"perff": {"mem_mb": 10}}),
    ),
    Case("resources-unknown-field", ["resources.quantize", "mem_gb"], lambda c: at(c, "resources.quantize.mem_gb", 4)),
    # -- silent no-ops: repeated YAML keys ---------------------------------------------------------
    Case(
        "dup-key-nested",
        ["duplicate key 'recovery_floor_pct'", "cfg.yaml:4"],
        text="models: {tiny-llama: {path: fixtures/tiny-llama}}\n"
        "guideline:\n  recovery_floor_pct: 99\n  recovery_floor_pct: 95\n",
    ),
    Case(
        "dup-key-top",
        ["duplicate key 'schemes'", "cfg.yaml:3", "first on line 2"],
        text="models: {tiny-llama: {path: fixtures/tiny-llama}}\nschemes: [bf16]\nschemes: [bf16, w8a8-fp]\n",
    ),
    Case(
        "dup-key-flow",
        ["duplicate key 'num_bits'", "cfg.yaml:1"],
        text="recipes: {w8a8-fp: {weights: {num_bits: 8, num_bits: 4}}}\n",
    ),
    Case(
        "dup-key-default-config",
        ["config/config.yaml:", "duplicate key 'seed'"],
        default_config_text=lambda t: text_with(t, "  seed: 1234\n", "  seed: 1234\n  seed: 1\n"),
    ),
    # -- silent no-ops: task lists -----------------------------------------------------------------
    Case(
        "task-twice-same-suite",
        ["tasks.reverse2.lm_eval_task", "qs_reverse", "count it twice"],
        lambda c: at(c, "tasks.reverse2", dict(c["tasks"]["reverse"])),
    ),
    Case(
        "task-twice-same-settings",
        ["tasks.reverse2.lm_eval_task", "evaluated twice"],
        lambda c: at(c, "tasks.reverse2", {**c["tasks"]["reverse"], "suite": "other"}),
    ),
    Case(
        "task-also-skipped",
        ["skipped_tasks.reverse", "also under 'tasks'"],
        lambda c: at(c, "skipped_tasks", {"reverse": "no judge"}),
    ),
    # -- silent no-ops: stale files where outputs belong -------------------------------------------
    Case(
        "stale-checkpoint-file",
        ["results/models/tiny-llama/w8a8-int", "is a file"],
        files={"results/models/tiny-llama/w8a8-int": "old"},
    ),
    Case(
        "stale-checkpoint-dir",
        ["results/models/tiny-llama/w4a16-int", "quantstudy.json"],
        files={"results/models/tiny-llama/w4a16-int/config.json": "{}"},
    ),
    Case("results-is-a-file", ["'results' is a file"], files={"results": "x"}),
    Case("results-models-is-a-file", ["'results/models' is a file"], files={"results/models": "x"}),
    # -- caught only after GPU time: metrics ---------------------------------------------------------
    Case(
        "metric-not-produced",
        ["tasks.reverse.metrics.0", "acc,none", "qs_reverse"],
        lambda c: at(c, "tasks.reverse.metrics", ["acc,none"]),
    ),
    Case(
        "metric-filter-typo",
        ["tasks.reverse.metrics.0", "exact_match,strcit", "exact_match,strict"],
        lambda c: at(c, "tasks.reverse.metrics", ["exact_match,strcit"]),
    ),
    Case(
        "metric-second-typo",
        ["tasks.count_letter.metrics.1", "acc_nrom,none"],
        lambda c: at(c, "tasks.count_letter.metrics", ["acc,none", "acc_nrom,none"]),
    ),
    Case(
        "metric-filter-none-on-filtered",
        ["tasks.reverse.metrics.0", "exact_match,none"],
        lambda c: at(c, "tasks.reverse.metrics", ["exact_match,none"]),
    ),
    Case(
        "metric-builtin-task",
        ["tasks.hs.metrics.0", "acc,strict", "hellaswag"],
        lambda c: at(c, "tasks.hs", {"lm_eval_task": "hellaswag", "suite": "x", "metrics": ["acc,strict"]}),
    ),
    Case(
        "metric-group",
        ["tasks.bbh.metrics.0", "exact_match,none", "leaderboard_bbh"],
        lambda c: at(
            c, "tasks.bbh", {"lm_eval_task": "leaderboard_bbh", "suite": "x", "metrics": ["exact_match,none"]}
        ),
    ),
    # -- caught only after GPU time: engine arguments ------------------------------------------------
    Case(
        "engine-max-model-length",
        ["evaluation.engine.max_model_length", "max_model_len"],
        lambda c: at(c, "evaluation.engine.max_model_length", 512),
    ),
    Case(
        "engine-max-num-seq",
        ["evaluation.engine.max_num_seq", "max_num_seqs"],
        lambda c: at(c, "evaluation.engine.max_num_seq", 4),
    ),
    Case(
        "perf-engine-typo",
        ["performance.engine.enforce_eagr", "enforce_eager"],
        lambda c: at(c, "performance.engine.enforce_eagr", True),
    ),
    Case(
        "perf-engine-unknown",
        ["performance.engine.gpu_mem_util"],
        lambda c: at(c, "performance.engine.gpu_mem_util", 0.5),
    ),
    Case(
        "slo-no-target",
        ["performance.use_cases.rag.slo", "sets no latency target", "ttft_ms"],
        lambda c: at(c, "performance.use_cases.rag.slo", {"percentile": 95}),
    ),
    Case(
        "slo-target-typo",
        ["performance.use_cases.rag.slo", "'ttft' was unexpected"],
        lambda c: at(c, "performance.use_cases.rag.slo", {"ttft": 500}),
    ),
    Case(
        "slo-percentile-100",
        ["performance.use_cases.rag.slo.percentile", "100"],
        lambda c: at(c, "performance.use_cases.rag.slo", {"ttft_ms": 500, "percentile": 100}),
    ),
    Case(
        "slo-goodput-share",
        ["performance.slo_search.goodput_share", "1.5"],
        lambda c: at(c, "performance.slo_search.goodput_share", 1.5),
    ),
    # -- caught only after GPU time: calibration contents ---------------------------------------------
    Case("calib-bad-json", [CAL, "cal.jsonl:2", "not valid JSON"], **calib(CHAT + "\n{oops\n")),
    Case("calib-no-messages", [CAL, "cal.jsonl:1", "'messages'"], **calib('{"text": "hi"}\n' + CHAT + "\n")),
    Case("calib-messages-string", [CAL, "cal.jsonl:1", "got str"], **calib('{"messages": "hi"}\n')),
    Case("calib-messages-strings", [CAL, "cal.jsonl:1", "messages[0]"], **calib('{"messages": ["hi"]}\n')),
    Case(
        "calib-turn-without-content",
        [CAL, "cal.jsonl:2", "messages[1]"],
        **calib(CHAT + '\n{"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}\n'),
    ),
    Case("calib-empty", [CAL, "cal.jsonl", "empty"], **calib("\n")),
    Case(
        "calib-too-short",
        [CAL, "cal.jsonl", "holds 3 samples", "num_samples = 128"],
        **calib("\n".join([CHAT] * 3) + "\n"),
    ),
    Case("calib-is-a-directory", [CAL, "is a directory"], lambda c: at(c, CAL, "data/calibration")),
    Case(
        "calib-split-on-local-file",
        ["calibration_sets.fixture-chat.split", "hub_dataset only"],
        lambda c: at(c, "calibration_sets.fixture-chat.split", "test"),
    ),
    # -- caught only after GPU time: lengths vs the model's limits -------------------------------------
    Case(
        "eval-max-model-len",
        ["evaluation.engine.max_model_len", "16384", "max_position_embeddings = 8192"],
        lambda c: at(c, "evaluation.engine.max_model_len", 16384),
    ),
    Case(
        "perf-max-model-len",
        ["performance.engine.max_model_len", "9000"],
        lambda c: at(c, "performance.engine.max_model_len", 9000),
    ),
    Case(
        "calib-max-seq-length",
        ["recipes.w8a8-int.calibration.max_seq_length", "10000"],
        lambda c: at(c, "recipes.w8a8-int.calibration.max_seq_length", 10000),
    ),
    Case(
        "similarity-max-tokens",
        ["similarity.max_tokens", "2048", "max_model_len = 1024"],
        lambda c: at(c, "similarity.max_tokens", 2048),
    ),
    # -- caught only after GPU time: model directories ---------------------------------------------------
    Case(
        "model-no-tokenizer",
        ["models.tiny-llama.path", "no tokenizer"],
        lambda c: at(c, "models.tiny-llama.path", "{model}"),
        tmpfiles={"model": model_variant(drop=("tokenizer.json",))},
    ),
    Case(
        "model-unknown-architecture",
        ["models.tiny-llama.path", "LlamaForCausalLMM", "LlamaForCausalLM'"],
        lambda c: at(c, "models.tiny-llama.path", "{model}"),
        tmpfiles={"model": model_variant(lambda m: m.update(architectures=["LlamaForCausalLMM"]))},
    ),
    Case(
        "model-gpt2-sizes",
        ["recipes.w4a16-int.modifiers", "group_size 128 does not divide the input size 96"],
        lambda c: at(c, "models.tiny-llama.path", "{model}"),
        tmpfiles={"model": model_variant(gpt2_layout)},
    ),
    Case(
        "model-text-config-sizes",
        ["recipes.w4a16-int.modifiers", "group_size 128 does not divide the input size 96"],
        lambda c: at(c, "models.tiny-llama.path", "{model}"),
        tmpfiles={"model": model_variant(text_config_layout)},
    ),
    Case(
        "model-config-json-broken",
        ["models.tiny-llama.path", "config.json", "not valid JSON"],
        lambda c: at(c, "models.tiny-llama.path", "{model}"),
        tmpfiles={"model": model_variant()},
        files={},
        args=[],
    ),
    Case(
        "hub-access-mistyped-local",
        ["models.tiny-llama.path", "fixtures/tiny-lama", "mistyped local path", "fixtures/tiny-llama"],
        lambda c: at(at(c, "hub_access", True), "models.tiny-llama.path", "fixtures/tiny-lama"),
    ),
    # -- caught, but the message did not help -------------------------------------------------------------
    Case(
        "malformed-default-config",
        ["config/config.yaml:", "not valid YAML"],
        # the schemes line cut short: an unclosed flow sequence
        default_config_text=lambda t: re.sub(r"(?m)^schemes: \[.*$", "schemes: [bf16, w8a8-fp", t, count=1),
    ),
    Case("missing-configfile", ["missing.yaml"], args=["--configfile", "missing.yaml"]),
    Case(
        "model-path-is-a-file",
        ["models.tiny-llama.path", "is a file, expected a model directory"],
        lambda c: at(c, "models.tiny-llama.path", "fixtures/tiny-llama/config.json"),
    ),
    Case(
        "task-include-is-a-file",
        ["evaluation.task_include_path", "is a file, expected a directory"],
        lambda c: at(c, "evaluation.task_include_path", "data/tasks/fixture/qs_reverse.yaml"),
    ),
    Case(
        "prompts-is-a-directory",
        ["prompt_sets.fixture-prompts.path", "is a directory"],
        lambda c: at(c, "prompt_sets.fixture-prompts.path", "data/prompts"),
    ),
    Case("other-working-directory", ["working directory", "-d/--directory"], cwd_elsewhere=True),
    Case("cli-bool-not-a-bool", ["hub_access", "'maybe'"], args=["--config", "hub_access=maybe"]),
    Case(
        "cli-object-out-of-range",
        ["guideline.recovery_floor_pct", "150"],
        args=["--config", "guideline={recovery_floor_pct: 150}"],
    ),
    Case(
        "cli-object-not-a-number",
        ["guideline.recovery_floor_pct", "'high'"],
        args=["--config", "guideline={recovery_floor_pct: high}"],
    ),
    Case(
        "cli-engine-typo",
        ["evaluation.engine.max_model_length"],
        args=["--config", "evaluation={engine: {max_model_length: 512}}"],
    ),
    # -- caught before this work too (kept so that they stay caught) ----------------------------------------
    Case("scheme-typo", ["schemes", "w8a8-int8"], lambda c: c["schemes"].append("w8a8-int8")),
    Case(
        "task-typo",
        ["tasks.count_letter.lm_eval_task", "qs_count_leter"],
        lambda c: at(c, "tasks.count_letter.lm_eval_task", "qs_count_leter"),
    ),
    Case(
        "negative-num-samples",
        ["recipes.w8a8-int.calibration.num_samples", "-1"],
        lambda c: at(c, "recipes.w8a8-int.calibration.num_samples", -1),
    ),
    Case(
        "group-size-96",
        ["recipes.w4a16-int.modifiers", "group_size 96 does not divide"],
        lambda c: at(c, "recipes.w4a16-int.modifiers.0.GPTQModifier.config_groups.group_0.weights.group_size", 96),
    ),
    Case("calib-missing", [CAL, "missing.jsonl"], lambda c: at(c, CAL, "data/calibration/missing.jsonl")),
    Case(
        "model-missing",
        ["models.tiny-llama.path", "fixtures/no-such-model"],
        lambda c: at(c, "models.tiny-llama.path", "fixtures/no-such-model"),
    ),
    Case(
        "hub-id-offline",
        ["models.tiny-llama.path", "hub id"],
        lambda c: at(c, "models.tiny-llama.path", "meta-llama/Llama-3.1-8B-Instruct"),
    ),
    Case(
        "recipe-typo",
        ["recipes.w4a16-int.modifiers[0].GPTQModifier.dampning_frac", "dampening_frac"],
        lambda c: at(c, "recipes.w4a16-int.modifiers.0.GPTQModifier.dampning_frac", 0.1),
    ),
]


def _broken_config_json(case: Case):
    # model-config-json-broken: the copied model's config.json is cut short.
    return case.id == "model-config-json-broken"


def run_case(wf: Workflow, case: Case, tmp: Path):
    made = {}
    for name, content in case.tmpfiles.items():
        if callable(content):
            made[name] = content(tmp, wf.dir)
        else:
            (tmp / name).write_text(content)
            made[name] = str(tmp / name)
    if _broken_config_json(case):
        cfg = Path(made["model"]) / "config.json"
        cfg.write_text(cfg.read_text()[:40])
    created = []
    for rel, content in case.files.items():
        p = wf.path(rel)
        assert not p.exists(), p
        top = wf.path(Path(rel).parts[0])
        if not top.exists():
            created.append(top)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    default_cfg = wf.path("config/config.yaml")
    original = default_cfg.read_text()
    args = ["-n", *case.args]
    if case.mutate or case.text is not None:
        if case.text is not None:
            text = case.text
        else:
            cfg = copy.deepcopy(yaml.safe_load(original))
            case.mutate(cfg)
            text = yaml.safe_dump(cfg, sort_keys=False)
            text = text.replace("{tmp}", str(tmp))
            for name, path in made.items():
                text = text.replace("{" + name + "}", path)
        (tmp / "cfg.yaml").write_text(text)
        args += ["--configfile", str(tmp / "cfg.yaml")]
    if case.default_config_text:
        default_cfg.write_text(case.default_config_text(original))
    before = sorted(str(p) for p in wf.path("results").rglob("*")) if wf.path("results").is_dir() else None
    try:
        if case.cwd_elsewhere:
            elsewhere = tmp / "elsewhere"
            elsewhere.mkdir()
            args = ["-s", str(wf.path("Snakefile")), "-d", str(elsewhere), *args]
        p = wf.snakemake(*args, check=False, timeout=300)
    finally:
        default_cfg.write_text(original)
        after_results = (
            wf.path("results").is_dir(),
            sorted(str(p) for p in wf.path("results").rglob("*")) if wf.path("results").is_dir() else None,
        )
        for top in created:
            shutil.rmtree(top) if top.is_dir() else top.unlink()
        if case.cwd_elsewhere:
            assert not (tmp / "elsewhere/results").exists()
    return p, before, after_results


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_before_any_job(wf, case, tmp_path):
    p, before, (results_is_dir, after) = run_case(wf, case, tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]
    for words in case.expect:
        assert words in out, (words, out[-3000:])
    # Nothing planned ran and nothing was written: results/ is as the case left it.
    assert after == before, "results/ changed"


def test_table_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


VALID_OVERRIDES = [
    ["hub_access=true"],
    ["guideline={recovery_floor_pct: 95}"],
    ["significance={n_resamples: 2000, confidence: 0.9}"],
    ["evaluation={engine: {max_model_len: 512}}", "hub_access=false"],
]


@pytest.mark.parametrize("overrides", VALID_OVERRIDES, ids=[" ".join(o) for o in VALID_OVERRIDES])
def test_valid_config_overrides_plan(wf, overrides):
    p = wf.snakemake("-n", "--config", *overrides, check=False, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "quantize" in out and "This was a dry-run" in out
    assert not wf.path("results").exists()
