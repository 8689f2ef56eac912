"""Which tasks lm-eval's YAMLs declare, and which "<metric>,<filter>" keys each produces.

No lm-eval import (the config check runs in Snakemake's env, in well under a second): every
YAML is scanned as text for its `task:`/`group:`/`tag:` names, and only the files of the
configured tasks are parsed, following `include:` as lm-eval does (a shallow update of the
included file). A task's keys are its metric_list (or the output type's default metrics)
crossed with its filter_list names ("none" without one); a group's are its
aggregate_metric_list and every subtask's; a tag's, its members'. Where a task defines its
metrics in Python (`!function`, `class:`), nothing is claimed: None, and no check.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# Keys may be quoted: llama3/instruct's MMLU files write "task": "mmlu_llama_anatomy".
_DECL = re.compile(r"""^["']?(task|group|tag)["']?:[ \t]*(\S*)""")
_ITEM = re.compile(r"^\s+-\s+(\S+)\s*$")
# lm-eval's defaults when a task has no metric_list (lm_eval/api/registry.py DEFAULT_METRIC_REGISTRY).
DEFAULT_METRICS = {
    "loglikelihood": ["perplexity", "acc"],
    "loglikelihood_rolling": ["word_perplexity", "byte_perplexity", "bits_per_byte"],
    "multiple_choice": ["acc", "acc_norm"],
    "generate_until": ["exact_match"],
}


class _Function(str):
    """A `!function module.name` value: code, so its outcome cannot be read from the YAML."""


class _TaskLoader(yaml.SafeLoader):
    pass


_TaskLoader.add_constructor("!function", lambda loader, node: _Function(loader.construct_scalar(node)))
_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: _Function(suffix))


def _unquote(s: str) -> str:
    return s.strip("'\"")


class TaskIndex:
    def __init__(self, directories):
        self.files: dict[str, list[Path]] = {}  # name -> YAMLs declaring it (task, group or tag)
        for d in directories:
            for y in sorted(Path(d).rglob("*.yaml")):
                try:
                    lines = y.read_text(errors="replace").splitlines()
                except OSError:
                    continue
                for i, line in enumerate(lines):
                    m = _DECL.match(line)
                    if not m:
                        continue
                    if m.group(2):
                        if m.group(2) not in ("[", "{"):
                            self.files.setdefault(_unquote(m.group(2)), []).append(y)
                        continue
                    for nxt in lines[i + 1 :]:  # a YAML list under the key
                        item = _ITEM.match(nxt)
                        if not item:
                            break
                        # A group's task list names its members, declared elsewhere: known names,
                        # but not declared by this file.
                        self.files.setdefault(_unquote(item.group(1)), [])
                        if m.group(1) == "tag":
                            self.files[_unquote(item.group(1))].append(y)
        self._cache: dict[str, set[str] | None] = {}

    @property
    def names(self) -> set[str]:
        return set(self.files)

    def _load(self, path: Path, depth=0) -> dict:
        data = yaml.load(path.read_text(errors="replace"), Loader=_TaskLoader) or {}
        inc = data.get("include")
        if isinstance(inc, str) and depth < 10:
            base = self._load(path.parent / inc, depth + 1)
            data = {**base, **{k: v for k, v in data.items() if k != "include"}}
        return data

    def _task_keys(self, cfg: dict) -> set[str] | None:
        if "class" in cfg:
            return None
        metrics = cfg.get("metric_list")
        if metrics is None:
            names = DEFAULT_METRICS.get(cfg.get("output_type", "generate_until"))
            if names is None:
                return None
        else:
            try:
                names = [m["metric"] for m in metrics]
            except (TypeError, KeyError):
                return None
        filters = cfg.get("filter_list")
        fnames = ["none"] if not filters else [f.get("name") for f in filters if isinstance(f, dict)]
        if any(not isinstance(x, str) or isinstance(x, _Function) for x in names + fnames):
            return None
        return {f"{m},{f}" for m in names for f in fnames}

    def _group_keys(self, cfg: dict, seen) -> set[str] | None:
        keys: set[str] = set()
        for agg in cfg.get("aggregate_metric_list") or []:
            filters = agg.get("filter_list", "none")
            for f in [filters] if isinstance(filters, str) else filters:
                keys.add(f"{agg.get('metric')},{f}")
        members = cfg.get("task")
        for member in members if isinstance(members, list) else []:
            if isinstance(member, str):
                sub = self.keys(member, seen)
            elif isinstance(member, dict):
                sub = self._keys_of_config(member, seen)
            else:
                sub = None
            if sub is None:
                return None
            keys |= sub
        return keys

    def _keys_of_config(self, cfg: dict, seen) -> set[str] | None:
        if isinstance(cfg.get("task"), list):
            return self._group_keys(cfg, seen)
        if "group" in cfg and "task" not in cfg:
            return None
        name = cfg.get("task")
        if (
            isinstance(name, str)
            and "metric_list" not in cfg
            and "output_type" not in cfg
            and "include" not in cfg
            and name in self.files
        ):
            return self.keys(name, seen)  # an inline reference to a declared task, maybe with overrides
        return self._task_keys(cfg)

    def keys(self, name: str, seen=frozenset()) -> set[str] | None:
        """Every "<metric>,<filter>" a run of `name` reports; None where the YAMLs cannot tell."""
        if name in self._cache:
            return self._cache[name]
        if name in seen:
            return None
        seen = seen | {name}
        out: set[str] | None = set()
        files = self.files.get(name) or []
        if not files:
            out = None
        for f in files:
            try:
                cfg = self._load(f)
            except (OSError, yaml.YAMLError, RecursionError):
                out = None
                break
            tags = cfg.get("tag")
            if (
                cfg.get("task") != name
                and cfg.get("group") != name
                and name != tags
                and name not in (tags if isinstance(tags, list) else [])
            ):
                continue
            sub = self._group_keys(cfg, seen) if isinstance(cfg.get("task"), list) else self._task_keys(cfg)
            if sub is None:
                out = None
                break
            out |= sub
        out = out or None  # nothing found that declares metrics: cannot tell
        self._cache[name] = out
        return out

    def leaf_configs(self, name: str, seen=frozenset()) -> list[dict]:
        """The resolved YAML config of every leaf task a run of `name` (task, group or tag)
        evaluates, through groups, subgroups and tags; [] where no YAML declares it."""
        if name in seen:
            return []
        seen = seen | {name}
        out: list[dict] = []
        for f in self.files.get(name) or []:
            try:
                cfg = self._load(f)
            except (OSError, yaml.YAMLError, RecursionError):
                continue
            tags = cfg.get("tag")
            tags = tags if isinstance(tags, list) else [tags]
            if cfg.get("task") != name and cfg.get("group") != name and name not in tags:
                continue
            out += self._leaves_of_config(cfg, seen)
        return out

    def _leaves_of_config(self, cfg: dict, seen) -> list[dict]:
        members = cfg.get("task")
        if isinstance(members, list):  # a group
            out = []
            for m in members:
                if isinstance(m, str):
                    out += self.leaf_configs(m, seen)
                elif isinstance(m, dict):
                    out += self._leaves_of_config(m, seen)
            return out
        if (
            isinstance(members, str)
            and members in self.files
            and "dataset_path" not in cfg
            and "include" not in cfg
            and cfg.get("task") not in seen
        ):
            # An inline reference to a declared task, maybe with overrides (lm-eval merges them).
            return [
                {**leaf, **{k: v for k, v in cfg.items() if k != "task"}} for leaf in self.leaf_configs(members, seen)
            ]
        return [cfg] if isinstance(members, str) else []

    def unsafe_code(self, name: str) -> bool:
        """Whether any leaf task of `name` runs model-written code (`unsafe_code: true`):
        lm-eval refuses those unless simple_evaluate gets confirm_run_unsafe_code=True."""
        return any(leaf.get("unsafe_code") is True for leaf in self.leaf_configs(name))

    def datasets(self, name: str) -> set[tuple[str, str | None]]:
        """(dataset_path, dataset_name) of every leaf task of `name`: what a run loads."""
        return {
            (leaf["dataset_path"], leaf.get("dataset_name"))
            for leaf in self.leaf_configs(name)
            if isinstance(leaf.get("dataset_path"), str)
        }
