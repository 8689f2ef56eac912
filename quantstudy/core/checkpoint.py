"""Check a checkpoint directory is complete before spending an engine start on it.

Stdlib only: reads config.json and each safetensors header (8-byte little-endian length,
JSON header, then the tensor data, whose end offsets the header declares), so a truncated
or corrupted file dropped into results/ is caught and named.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


class CheckpointError(ValueError):
    pass


def check_safetensors(path: Path) -> int:
    """Return the number of tensors; raise CheckpointError naming the file if it is damaged."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8:
                raise CheckpointError(f"{path}: truncated: safetensors header says {n} bytes but the file has {size}")
            header = json.loads(f.read(n))
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: unreadable safetensors header ({e})") from None
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated: tensors need {8 + n + end} bytes, the file has {size}")
    return len(header) - ("__metadata__" in header)


def check_checkpoint(directory: str | Path, quantized: bool = False) -> dict:
    """Validate a Hugging Face checkpoint directory; return its config.json."""
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: checkpoint directory does not exist")
    cfg_path = d / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{cfg_path}: missing") from None
    except ValueError as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from None
    if quantized and "quantization_config" not in cfg:
        raise CheckpointError(f"{cfg_path}: no quantization_config: not a quantized checkpoint")
    shards = sorted(d.glob("*.safetensors"))
    if not shards:
        raise CheckpointError(f"{d}: no *.safetensors weights")
    index = d / "model.safetensors.index.json"
    if index.exists():
        try:
            wanted = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"{index}: unreadable shard index ({e})") from None
        missing = sorted(wanted - {p.name for p in shards})
        if missing:
            raise CheckpointError(f"{d}: shards listed in {index.name} are missing: {missing}")
    for shard in shards:
        check_safetensors(shard)
    return cfg
