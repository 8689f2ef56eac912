"""Offline staging: everything a grid reads from a hub, fetched once into one local cache.

Many cluster compute nodes have no internet. On a host with network:

    python -m quantstudy.stage --configfile config/paper.yaml --cache DIR

(run with the serve env's Python: it has huggingface_hub, datasets, evaluate and nltk)
fetches every hub model, every dataset each configured lm-eval task loads (its own
dataset_path/dataset_name, read from the task YAMLs, through groups and tags), HF
evaluate's code_eval metric (tasks marked unsafe_code), nltk's punkt_tab (IFEval), the
calibration sets and the prompt sets. Jobs then run offline against DIR (runtime.py
cache_env), and before any job the workflow checks DIR (`missing_items`), naming what is
missing and this command.

Cache layout (the libraries' own, so they find it offline with no code of ours):
  DIR/hf/hub/models--ORG--NAME/snapshots/REV/...   huggingface_hub (HF_HOME=DIR/hf)
  DIR/hf/datasets/ORG___NAME/CONFIG/...            datasets' prepared cache
  DIR/hf/modules/evaluate_modules/metrics/evaluate-metric--code_eval/HASH/code_eval.py
                                                   evaluate's module cache (HF_MODULES_CACHE); a
                                                   copy vendored in quantstudy/data/code_eval,
                                                   so staging it needs no network
  DIR/nltk_data/tokenizers/punkt_tab/              NLTK_DATA
  DIR/prompts/SET.jsonl                            prompt sets, as {"id", "prompt"} lines

Stdlib only at import: the Snakefile calls `required_items`/`missing_items` at start-up.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from quantstudy.core import cli
from quantstudy.core.config import ConfigError

NLTK_PACKAGES = ("punkt_tab",)
# Tasks whose metrics read nltk data at run time (lm-eval's ifeval utils download it otherwise).
_NLTK_TASK_PREFIXES = ("ifeval", "leaderboard_ifeval")


@dataclass(frozen=True)
class Item:
    kind: str  # model | dataset | metric | nltk | prompts
    name: str  # hub id, metric or package name, or prompt set name
    config: str | None = None  # a dataset's config (dataset_name)
    why: str = ""  # who needs it, for the message

    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" [{self.config}]" if self.config else "")


def hf_dir(cache: str | Path) -> Path:
    return Path(cache) / "hf"


def prompt_set_path(config: dict, name: str) -> str:
    """A prompt set's file: its `path`, or (a hub prompt set) where staging writes it."""
    spec = config["prompt_sets"][name]
    if "path" in spec:
        return spec["path"]
    return str(Path(config["offline_cache"]) / "prompts" / f"{name}.jsonl")


def required_items(config: dict, task_dirs, workdir: str | Path = ".") -> list[Item]:
    """Everything the grid reads from a hub, in a stable order."""
    from quantstudy.evaluate.taskindex import TaskIndex

    items: list[Item] = []
    for name, spec in config["models"].items():
        if "gguf" not in spec and not (Path(workdir) / spec["path"]).is_dir():  # a GGUF model is prepared here
            items.append(Item("model", spec["path"], why=f"models.{name}.path"))
    for name, spec in config.get("calibration_sets", {}).items():
        if "hub_dataset" in spec:
            items.append(Item("dataset", spec["hub_dataset"], None, f"calibration_sets.{name}"))
    index = TaskIndex(task_dirs)
    unsafe, nltk = [], []
    for name, spec in config["tasks"].items():
        task = spec["lm_eval_task"]
        for path, ds_name in sorted(index.datasets(task), key=lambda x: (x[0], x[1] or "")):
            if path in ("json", "csv", "parquet", "text") or Path(path).exists():
                continue  # a local file, not a hub dataset
            items.append(Item("dataset", path, ds_name, f"tasks.{name}"))
        if index.unsafe_code(task):
            unsafe.append(name)
        if task.startswith(_NLTK_TASK_PREFIXES):
            nltk.append(name)
    if unsafe:
        items.append(Item("metric", "code_eval", why="tasks " + ", ".join(unsafe)))
    for pkg in NLTK_PACKAGES if nltk else ():
        items.append(Item("nltk", pkg, why="tasks " + ", ".join(nltk)))
    sim = config.get("similarity")
    for name, spec in config.get("prompt_sets", {}).items():
        if "hub_dataset" in spec and sim and sim["prompt_set"] == name:
            items.append(Item("prompts", name, why="similarity.prompt_set"))
    merged: dict[tuple, Item] = {}  # one item per thing fetched, naming everyone who needs it
    for i in items:
        key = (i.kind, i.name, i.config)
        prev = merged.get(key)
        merged[key] = i if prev is None else Item(i.kind, i.name, i.config, f"{prev.why}, {i.why}")
    return list(merged.values())


def _dataset_dirname(hub_id: str) -> str:
    """datasets' prepared-cache folder of a hub dataset: ORG___name, the name snake-cased
    (datasets.naming.camelcase_to_snakecase): TIGER-Lab/MMLU-Pro -> TIGER-Lab___mmlu-pro."""
    import re

    org, _, name = hub_id.rpartition("/")
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()
    return f"{org}___{name}" if org else name


def is_staged(item: Item, cache: str | Path, config: dict | None = None) -> bool:
    hf = hf_dir(cache)
    if item.kind == "model":
        snaps = hf / "hub" / f"models--{item.name.replace('/', '--')}" / "snapshots"
        return any((s / "config.json").is_file() for s in snaps.glob("*"))
    if item.kind == "dataset":
        base = hf / "datasets" / _dataset_dirname(item.name)
        return (base / (item.config or "default")).is_dir() if item.config else any(base.glob("*/*"))
    if item.kind == "metric":
        return any((hf / "modules" / "evaluate_modules" / "metrics").glob(f"evaluate-metric--{item.name}/*/*.py"))
    if item.kind == "nltk":
        return (Path(cache) / "nltk_data" / "tokenizers" / item.name).is_dir()
    if item.kind == "prompts":
        return Path(prompt_set_path(config, item.name)).is_file()
    raise ValueError(f"unknown item kind {item.kind!r}")


VENDORED_METRICS = Path(__file__).parent / "data"


def _hash_python_lines(lines: list[str]) -> str:
    """evaluate's module hash (evaluate.loading.files_to_hash, via datasets'
    _hash_python_lines): sha256 of the scripts' lines with comments removed."""
    import hashlib
    import re

    kept = [line for line in (re.sub(r"#.*", "", x) for x in lines) if line]
    return hashlib.sha256("\n".join(kept).encode("utf-8")).hexdigest()


def stage_metric(name: str, cache: str | Path) -> Path:
    """Place the vendored copy of an HF evaluate metric where `evaluate.load(name)` finds it
    offline: HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-metric--NAME/HASH/NAME.py
    (+ its local imports), the layout evaluate's HubEvaluationModuleFactory writes after a
    download and CachedEvaluationModuleFactory reads when the hub is unreachable. Stdlib
    only, no network. Returns the script's path."""
    src = VENDORED_METRICS / name
    script = src / f"{name}.py"
    if not script.is_file():
        raise FileNotFoundError(f"no vendored copy of metric {name!r} in {src}")
    imports = sorted(p for p in src.glob("*.py") if p != script)
    lines: list[str] = []
    for f in [script, *imports]:  # evaluate hashes the script, then its local imports
        lines += f.read_text(encoding="utf-8").splitlines(keepends=True)
    root = hf_dir(cache) / "modules" / "evaluate_modules"
    mod_dir = root / "metrics" / f"evaluate-metric--{name}"
    final = mod_dir / _hash_python_lines(lines)
    if (final / script.name).is_file():
        return final / script.name
    # Packages all the way down, as evaluate's init_dynamic_modules/_create_importable_file make them.
    mod_dir.mkdir(parents=True, exist_ok=True)
    for d in (hf_dir(cache) / "modules", root, root / "metrics", mod_dir):
        (d / "__init__.py").touch()
    tmp = mod_dir / f".{final.name}.tmp{os.getpid()}"
    tmp.mkdir()
    (tmp / "__init__.py").touch()
    for f in [script, *imports]:
        (tmp / f.name).write_bytes(f.read_bytes())
    (tmp / f"{name}.json").write_text(
        json.dumps({"original file path": str(script), "local file path": str(final / script.name)})
    )
    os.replace(tmp, final)  # atomic: a half-copied module is never picked as the latest
    return final / script.name


def missing_items(config: dict, cache: str | Path, task_dirs, workdir: str | Path = ".") -> list[Item]:
    return [i for i in required_items(config, task_dirs, workdir) if not is_staged(i, cache, config)]


def stage_command(configfiles, cache) -> str:
    def short(f):  # as the user typed it, relative to where they run snakemake
        rel = os.path.relpath(f)
        return f if rel.startswith("..") else rel

    files = " ".join(f"--configfile {short(f)}" for f in configfiles)
    return f"$QUANTSTUDY_VENVS/serve/bin/python -m quantstudy.stage {files} --cache {cache}"


def missing_message(missing: list[Item], cache, configfiles) -> str:
    lines = [f"the offline cache '{cache}' lacks {len(missing)} item(s) the jobs read (they run offline):"]
    lines += [f"  - {i.label()} (for {i.why})" for i in missing]
    lines.append(f"Stage them on a host with network: {stage_command(configfiles, cache)}")
    return "\n".join(lines)


# ---- fetching (a host with network; serve env) ------------------------------------------


def _env_for(cache: Path) -> None:
    os.environ["HF_HOME"] = str(hf_dir(cache))
    os.environ["HF_DATASETS_CACHE"] = str(hf_dir(cache) / "datasets")
    os.environ["HF_MODULES_CACHE"] = str(hf_dir(cache) / "modules")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE"):
        os.environ.pop(var, None)


def _get(row: dict, dotted: str):
    for part in dotted.split("."):
        row = row[int(part)] if isinstance(row, list) else row[part]
    return row


def fetch(item: Item, cache: Path, config: dict) -> None:
    """Fetch one item into the cache the way the library that reads it caches it."""
    if item.kind == "model":
        from huggingface_hub import snapshot_download

        snapshot_download(
            item.name,
            cache_dir=str(hf_dir(cache) / "hub"),
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
        )
    elif item.kind == "dataset":
        import datasets

        datasets.load_dataset(item.name, item.config)  # prepares datasets' cache, read offline later
    elif item.kind == "metric":
        stage_metric(item.name, cache)  # the vendored copy: the hub's script needs network
    elif item.kind == "nltk":
        import nltk.downloader

        # QS_NLTK_INDEX_URL: another download index (a mirror; the CI stand-in, tests/standin.py).
        # nltk reads file:// URLs only under its data roots: a mirror on disk becomes one.
        index = os.environ.get("QS_NLTK_INDEX_URL")
        if index and index.startswith("file://"):
            from urllib.parse import unquote, urlsplit

            nltk.data.path.append(str(Path(unquote(urlsplit(index).path)).parent))
            nltk.data.path.append(str(cache / "nltk_data"))
        downloader = nltk.downloader.Downloader(server_index_url=index) if index else nltk.downloader._downloader
        if not downloader.download(item.name, download_dir=str(cache / "nltk_data"), raise_on_error=True):
            raise RuntimeError(f"nltk could not download {item.name}")
    elif item.kind == "prompts":
        import datasets

        spec = config["prompt_sets"][item.name]
        ds = datasets.load_dataset(spec["hub_dataset"], split=spec["split"])
        out = Path(prompt_set_path(config, item.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with open(tmp, "w") as f:
            for row in ds:
                f.write(
                    json.dumps({"id": str(_get(row, spec["id_field"])), "prompt": _get(row, spec["prompt_field"])})
                    + "\n"
                )
        os.replace(tmp, out)
    else:
        raise ValueError(f"unknown item kind {item.kind!r}")


def stage(config: dict, cache: str | Path, task_dirs, workdir: str | Path = ".") -> list[str]:
    """Fetch every missing item; return the failures (each naming its item)."""
    cache = Path(cache)
    _env_for(cache)
    failures = []
    for item in missing_items(config, cache, task_dirs, workdir):
        print(f"staging {item.label()} (for {item.why})", flush=True)
        try:
            fetch(item, cache, config)
        except Exception as e:
            failures.append(f"{item.label()}: {type(e).__name__}: {e}")
            continue
        if not is_staged(item, cache, config):
            failures.append(f"{item.label()}: fetched, but not found where offline jobs look")
    return failures


SCHEMA = Path(__file__).resolve().parents[1] / "config/schema/config.schema.yaml"


def _load_config(files) -> dict:
    """The merged config files, checked against the schema and its defaults filled in, as
    the workflow sees them (a bad file is named here, before anything is fetched)."""
    import yaml

    from quantstudy.core.config import deep_merge, fill_defaults, schema_errors

    config: dict = {}
    for f in files:
        config = deep_merge(config, yaml.safe_load(Path(f).read_text()) or {})
    schema = yaml.safe_load(SCHEMA.read_text())
    errs = schema_errors(config, schema)
    if errs:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errs))
    return fill_defaults(config, schema)


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--configfile", action="append", required=True, help="config file(s), merged in order")
    ap.add_argument("--cache", help="the offline cache (default: the config's offline_cache)")
    ap.add_argument("--check", action="store_true", help="only list what is missing (no network)")
    args = ap.parse_args(argv)
    try:
        config = _load_config(args.configfile)
    except ConfigError as e:
        raise cli.StepError(e) from e
    cache = args.cache or config.get("offline_cache")
    if not cache:
        print("no cache: give --cache or set offline_cache in the config", file=sys.stderr)
        return 2
    config["offline_cache"] = cache
    import lm_eval  # the serve env's: its task YAMLs say which datasets each task loads

    include = config.get("evaluation", {}).get("task_include_path")
    task_dirs = [Path(lm_eval.__file__).parent / "tasks"] + ([Path(include)] if include else [])
    if args.check:
        missing = missing_items(config, cache, task_dirs)
        print(missing_message(missing, cache, args.configfile) if missing else f"{cache}: complete")
        return 1 if missing else 0
    failures = stage(config, cache, task_dirs)
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    cli.main(main)
