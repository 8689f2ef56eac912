"""A prompt file that is missing, empty or malformed fails at config-check time, naming the
file and line, before any generation."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from quantstudy.generate.prompts import PromptFileError, load_prompts, prompt_file_problems
from quantstudy.similarity.textsim import config_errors

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def write(tmp_path, text, name="p.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_fixture_prompts_load():
    rows = load_prompts(ROOT / "data/prompts/fixture_prompts.jsonl")
    assert len(rows) == 64 and set(rows[0]) == {"id", "prompt"}


def test_missing_file(tmp_path):
    [msg] = prompt_file_problems(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in msg and "does not exist" in msg


def test_empty_file(tmp_path):
    for text in ("", "\n\n  \n"):
        [msg] = prompt_file_problems(write(tmp_path, text))
        assert "p.jsonl" in msg and "empty" in msg


def test_malformed_line_is_named(tmp_path):
    p = write(tmp_path, '{"id": "a", "prompt": "x"}\n\n{"id": "b", "prompt": \n')
    [msg] = prompt_file_problems(p)
    assert msg.startswith(f"{p}:3:") and "not valid JSON" in msg
    with pytest.raises(PromptFileError, match=r"p\.jsonl:3"):
        load_prompts(p)


@pytest.mark.parametrize(
    "line, words",
    [
        ('["a", "b"]', ["JSON object"]),
        ('{"prompt": "x"}', ["'id'"]),
        ('{"id": 7, "prompt": "x"}', ["'id'", "7"]),
        ('{"id": "a"}', ["'prompt'"]),
        ('{"id": "a", "prompt": "   "}', ["'prompt'", "non-empty"]),
    ],
)
def test_bad_rows(tmp_path, line, words):
    p = write(tmp_path, '{"id": "ok", "prompt": "fine"}\n' + line + "\n")
    [msg] = prompt_file_problems(p)
    assert msg.startswith(f"{p}:2:")
    for w in words:
        assert w in msg


def test_duplicate_id_names_both_lines(tmp_path):
    p = write(tmp_path, '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    [msg] = prompt_file_problems(p)
    assert f"{p}:2:" in msg and "duplicate" in msg and "line 1" in msg


def test_many_problems_are_capped(tmp_path):
    p = write(tmp_path, "not json\n" * 30)
    msgs = prompt_file_problems(p)
    assert len(msgs) == 11 and "20 more" in msgs[-1]


def test_extra_keys_are_ignored(tmp_path):
    p = write(tmp_path, json.dumps({"id": "a", "prompt": "x", "reference": "y"}) + "\n")
    assert load_prompts(p) == [{"id": "a", "prompt": "x"}]


def _cfg(**changes):
    cfg = copy.deepcopy(DEFAULT)
    for k, v in changes.items():
        cfg[k] = v
    return cfg


def test_default_config_passes():
    assert config_errors(copy.deepcopy(DEFAULT), ROOT) == []


def test_config_check_names_key_file_and_line(tmp_path):
    bad = write(tmp_path, '{"id": "a", "prompt": "x"}\n{oops}\n')
    cfg = _cfg(prompt_sets={"fixture-prompts": {"path": str(bad)}})
    [msg] = config_errors(cfg, ROOT)
    assert "prompt_sets.fixture-prompts.path" in msg and f"{bad}:2" in msg


def test_config_check_relative_path_is_shown_as_configured():
    cfg = _cfg(prompt_sets={"fixture-prompts": {"path": "data/prompts/absent.jsonl"}})
    [msg] = config_errors(cfg, ROOT)
    assert (
        "'prompt_sets.fixture-prompts.path'" in msg and "data/prompts/absent.jsonl: prompt file does not exist" in msg
    )
    assert str(ROOT) not in msg


def test_config_check_undefined_prompt_set_and_encoder():
    cfg = copy.deepcopy(DEFAULT)
    cfg["similarity"]["prompt_set"] = "arena-hard"
    cfg["similarity"]["bertscore"]["model"] = "models/roberta-large"
    msgs = config_errors(cfg, ROOT)
    assert any("similarity.prompt_set" in m and "arena-hard" in m for m in msgs)
    assert any("similarity.bertscore.model" in m and "models/roberta-large" in m for m in msgs)


def test_no_similarity_block_checks_nothing():
    cfg = copy.deepcopy(DEFAULT)
    cfg.pop("similarity")
    assert config_errors(cfg, ROOT) == []


def test_schema_accepts_default_and_rejects_unknown_similarity_key():
    from quantstudy.core.config import schema_errors

    schema = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
    assert schema_errors(copy.deepcopy(DEFAULT), schema) == []
    cfg = copy.deepcopy(DEFAULT)
    cfg["similarity"]["max_token"] = 5
    cfg["similarity"]["logprobs_top_k"] = 0
    msgs = schema_errors(cfg, schema)
    assert any("'similarity'" in m and "max_token" in m for m in msgs)
    assert any("'similarity.logprobs_top_k'" in m for m in msgs)
