"""Read a result JSON the workflow wrote, refusing anything incomplete (errors name the file)."""

from __future__ import annotations

import json
from pathlib import Path


def read_result(path, fmt: str, required: tuple[str, ...], kind: str, error: type[ValueError] = ValueError) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {kind} result is missing") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON (truncated or corrupted?): {e}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{path}: not a quantstudy {kind} result (expected format {fmt!r})")
    for key in required:
        if key not in data:
            raise error(f"{path}: {kind} result lacks {key!r}")
    return data
