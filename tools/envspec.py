"""Read the pinned conda env files in envs/ (stdlib only: runs before any venv exists).

The env files are the single source of truth for every pin. Conda reads them on a
cluster (`--sdm conda`); tools/setup_envs.py reads them here to build venvs.
Only the subset of YAML that conda env files use is understood: a `dependencies:`
list of conda specs and an optional nested `- pip:` list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?P<extras>\[[A-Za-z0-9_,\-]+\])?==(?P<version>[A-Za-z0-9_.+\-!]+)$")


@dataclass
class EnvSpec:
    name: str
    path: Path
    python: str | None = None  # e.g. "3.11"
    conda: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)

    def pins(self) -> dict[str, str]:
        """Map normalized package name -> exact version for every pip requirement."""
        out = {}
        for req in self.pip:
            m = _PIN.match(req)
            if m is None:
                raise ValueError(f"{self.path}: pip requirement {req!r} is not pinned as name==version")
            out[normalize(m["name"])] = m["version"]
        return out


def normalize(name: str) -> str:
    """PEP 503 name normalization (Foo_Bar -> foo-bar)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _strip(line: str) -> str:
    return line.split("#", 1)[0].rstrip()


def parse_env_file(path: str | Path) -> EnvSpec:
    path = Path(path)
    spec = EnvSpec(name=path.stem, path=path)
    in_deps = False
    pip_indent = None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = _strip(raw)
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            in_deps = body == "dependencies:"
            pip_indent = None
            continue
        if not in_deps:
            continue
        if not body.startswith("- "):
            raise ValueError(f"{path}:{lineno}: expected a list item under dependencies, got {body!r}")
        item = body[2:].strip().strip("'\"")
        if pip_indent is not None and indent > pip_indent:
            spec.pip.append(item)
            continue
        pip_indent = None
        if item == "pip:":
            pip_indent = indent
        elif item == "pip":
            continue
        else:
            spec.conda.append(item)
            if item.startswith("python="):
                spec.python = item.split("=", 1)[1]
    return spec


def load_env_specs(envs_dir: str | Path) -> dict[str, EnvSpec]:
    return {p.stem: parse_env_file(p) for p in sorted(Path(envs_dir).glob("*.yaml"))}
