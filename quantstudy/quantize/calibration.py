"""Calibration files (JSONL of {"messages": [{"role", "content"}, ...]}), checked up front.

Stdlib only, like quantstudy/generate/prompts.py: the quantize job reads the file only after the
model is loaded, so a bad line, a line without `messages`, or a file shorter than the
recipe's num_samples would otherwise cost that job (or silently calibrate on fewer samples).
"""

from __future__ import annotations

import json
from pathlib import Path

from quantstudy.generate.prompts import MAX_REPORTED, jsonl_lines

# A hub calibration set's split and chat field when the config leaves them out.
HUB_DEFAULTS = {"split": "train", "messages_field": "messages"}


def calibration_file_problems(path: str | Path, num_samples: int | None = None, field: str = "messages") -> list[str]:
    """Every problem of a calibration file, each as 'FILE[:LINE]: what is wrong'; [] if usable."""
    path = Path(path)
    lines, problems = jsonl_lines(path, "calibration file", "a JSONL file")
    if lines is None:
        return problems
    rows = 0
    for where, row in lines:
        if not isinstance(row, dict) or field not in row:
            problems.append(f"{where}: expected a JSON object with '{field}'")
            continue
        messages = row[field]
        if not isinstance(messages, list) or not messages:
            problems.append(
                f"{where}: '{field}' must be a non-empty list of {{role, content}} turns, got {type(messages).__name__}"
            )
            continue
        bad = next(
            (
                i
                for i, m in enumerate(messages)
                if not isinstance(m, dict)
                or not isinstance(m.get("role"), str)
                or not isinstance(m.get("content"), str)
            ),
            None,
        )
        if bad is not None:
            problems.append(
                f"{where}: '{field}[{bad}]' must be an object with string 'role' and 'content', "
                f"got {json.dumps(messages[bad])[:60]}"
            )
            continue
        rows += 1
    if not problems and rows == 0:
        problems.append(f"{path}: calibration file is empty (no JSON lines)")
    elif not problems and num_samples is not None and rows < num_samples:
        problems.append(f"{path}: holds {rows} samples, fewer than num_samples = {num_samples}")
    if len(problems) > MAX_REPORTED:
        problems = problems[:MAX_REPORTED] + [f"{path}: ... and {len(problems) - MAX_REPORTED} more problems"]
    return problems
