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


def read_jsonl(path, transform=None) -> list:
    """Rows of a JSONL file (each passed through `transform`); errors name the file and line,
    a row `transform` cannot take (KeyError, TypeError, ValueError) included."""
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON (truncated or corrupted?): {e}") from None
            try:
                rows.append(transform(row) if transform else row)
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{lineno}: unexpected row ({type(e).__name__}: {e})") from None
    return rows
