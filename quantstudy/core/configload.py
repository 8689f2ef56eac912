"""Reading config files and --config overrides the way the schema means them.

Snakemake reads config files with a YAML loader that keeps the last of two equal keys
and reports a syntax error without the file or line; it passes `--config KEY=VALUE`
values as strings (nested ones too). This module re-reads the same files with a loader
that names file and line for both, and coerces override strings to the schema's type
where only one reading fits. Stdlib + PyYAML: it runs while Snakemake parses the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from quantstudy.core.config import ConfigError, resolve_ref


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice, naming file and line."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges are meant to be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key not in seen:
                    seen[key] = key_node.start_mark.line + 1
                    continue
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            first = seen[key]
            raise ConfigError(
                f"{key_node.start_mark.name}:{key_node.start_mark.line + 1}: duplicate key "
                f"'{key}' (first on line {first}); YAML would silently keep only the last value"
            )
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str, name: str):
    """Parse YAML text; ConfigError 'NAME:LINE:COL: problem' on a syntax error or duplicate key."""
    loader = UniqueKeyLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise ConfigError(f"{where}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: not valid YAML: {e}") from None
    finally:
        loader.dispose()


def read_config_file(path: str | Path, shown: str | None = None) -> dict:
    """A config file as a dict; ConfigError naming the file (and line) if it cannot be one."""
    path = Path(path)
    shown = shown or str(path)
    if path.is_dir():
        raise ConfigError(f"{shown}: is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: config file does not exist (relative paths are taken from the working directory {Path.cwd()})"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{shown}: cannot be read ({e})") from None
    data = load_yaml_text(text, shown)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown}: a config file must be a mapping of keys at the top level, got {type(data).__name__}"
        )
    return data


def workdir_note(basedir) -> str | None:
    """Where relative config paths are looked up, when that is not the workflow's folder."""
    if Path.cwd().resolve() == Path(basedir).resolve():
        return None
    return (
        f"(relative paths in the config are taken from the working directory {Path.cwd()}, "
        f"not from the workflow's directory {basedir}: was -d/--directory meant?)"
    )


def config_file_errors(paths) -> list[str]:
    """Duplicate keys and syntax errors of every config file given to Snakemake."""
    errs = []
    for p in paths:
        try:
            read_config_file(p)
        except ConfigError as e:
            errs.append(str(e))
    return errs


# --config coercion -----------------------------------------------------------------------

_JSON_TYPE = {
    "object": dict,
    "array": list,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "null": type(None),
    "string": str,
}


def _alternatives(schema: dict, node) -> list[dict]:
    """The sub-schemas a value at `node` may match (oneOf/anyOf flattened)."""
    node = resolve_ref(schema, node)
    if not isinstance(node, dict):
        return []
    alts = node.get("oneOf") or node.get("anyOf")
    if alts:
        return [a for alt in alts for a in _alternatives(schema, alt)]
    return [node]


def schema_at(schema: dict, path) -> list[dict]:
    """Sub-schemas describing the value at `path` (a key sequence); [] where unknown."""
    nodes = [schema]
    for key in path:
        nxt = []
        for n in (a for node in nodes for a in _alternatives(schema, node)):
            if isinstance(key, int):
                if "items" in n:
                    nxt.append(n["items"])
            elif key in n.get("properties", {}):
                nxt.append(n["properties"][key])
            elif isinstance(n.get("additionalProperties"), dict):
                nxt.append(n["additionalProperties"])
        nodes = nxt
    return [a for node in nodes for a in _alternatives(schema, node)]


def _types(alt: dict) -> set[str]:
    if "type" in alt:
        t = alt["type"]
        return set(t) if isinstance(t, list) else {t}
    values = alt.get("enum", []) + ([alt["const"]] if "const" in alt else [])
    return (
        {
            next(
                k for k, py in _JSON_TYPE.items() if isinstance(v, py) and not (k == "integer" and isinstance(v, bool))
            )
            for v in values
        }
        if values
        else {"string", "object", "array", "boolean", "number", "null"}
    )


def _fits(value, types: set[str]) -> bool:
    for t in types:
        if t in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _JSON_TYPE[t]):
            return True
    return False


def coerce_overrides(config: dict, overrides: dict, schema: dict) -> list[str]:
    """Give --config strings the schema's type, in place in `config`; return what changed.

    Snakemake parses `--config` values with YAML's BaseLoader (every leaf a string, e.g.
    hub_access=true -> 'true', guideline='{recovery_floor_pct: 95}' -> {'recovery_floor_pct':
    '95'}). A string is re-read as YAML only where the schema accepts no string at that key
    and the re-read value has a type it accepts: unambiguous, so nothing a user meant as
    text changes. Anything else is left for the schema check to report.
    """
    changed = []

    def walk(value, path, target_parent, target_key):
        if isinstance(value, Mapping):
            node = target_parent[target_key] if target_parent is not None else config
            if isinstance(node, Mapping):
                for k, v in value.items():
                    if k in node:
                        walk(v, path + [k], node, k)
            return
        if not isinstance(value, str) or target_parent is None:
            return
        alts = schema_at(schema, path)
        if not alts or any("string" in _types(a) for a in alts):
            return
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return
        if isinstance(parsed, str) or not any(_fits(parsed, _types(a)) for a in alts):
            return
        if isinstance(target_parent.get(target_key), str):
            target_parent[target_key] = parsed
            changed.append(".".join(map(str, path)))

    walk(overrides, [], None, None)
    return changed
