import json
import shutil

import pytest

from quantstudy.core.checkpoint import CheckpointError, check_checkpoint
from tests.workspace import ROOT

FIXTURE = ROOT / "fixtures/tiny-llama"


@pytest.fixture
def ckpt(tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, d)
    return d


def test_fixture_is_a_complete_checkpoint():
    assert check_checkpoint(FIXTURE)["model_type"] == "llama"


def test_truncated_weights_are_named(ckpt):
    w = ckpt / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: truncated"):
        check_checkpoint(ckpt)


def test_garbage_weights_are_named(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        check_checkpoint(ckpt)


def test_corrupt_config_is_named(ckpt):
    (ckpt / "config.json").write_text('{"model_type": "lla')
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        check_checkpoint(ckpt)


def test_unquantized_checkpoint_where_quantized_expected(ckpt):
    with pytest.raises(CheckpointError, match="quantization_config"):
        check_checkpoint(ckpt, quantized=True)


def test_missing_shard_from_index(ckpt):
    (ckpt / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model.safetensors", "b": "model-00002.safetensors"}})
    )
    with pytest.raises(CheckpointError, match="model-00002.safetensors"):
        check_checkpoint(ckpt)
