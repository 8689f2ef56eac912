"""Prompt sets for the text-similarity stage: JSONL files of {"id": ..., "prompt": ...}.

Stdlib only: the same checks run when Snakemake parses the config (so a missing, empty or
malformed file fails before any engine starts, naming the file and line) and in the
generate step that reads the prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_REPORTED = 10  # problems listed per file; the rest are counted


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message names the file (and line)."""


def jsonl_lines(path: Path, what: str, expected: str) -> tuple[list[tuple[str, object]] | None, list[str]]:
    """The reading both up-front file checks share (prompt and calibration files):
    ('FILE:LINE', parsed row) per non-blank line, and the problems so far (lines that are
    not JSON). Rows are None when the file itself cannot be read."""
    if not path.exists():
        return None, [f"{path}: {what} does not exist"]
    if not path.is_file():
        return None, [f"{path}: is a directory, expected {expected}"]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return None, [f"{path}: not UTF-8 text ({e})"]
    except OSError as e:
        return None, [f"{path}: cannot be read ({e})"]
    rows, problems = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path}:{lineno}", json.loads(line)))
        except ValueError as e:
            problems.append(f"{path}:{lineno}: not valid JSON ({e.msg})")
    return rows, problems


def prompt_file_problems(path: str | Path) -> list[str]:
    """Every problem of a prompt file, each as 'FILE[:LINE]: what is wrong'; [] if usable.

    Format: one JSON object per line with a non-empty string "id" (unique in the file)
    and a non-empty string "prompt" (the user turn); other keys are allowed and ignored.
    Blank lines are skipped; a file with no prompt at all is an error.
    """
    path = Path(path)
    rows, problems = jsonl_lines(path, "prompt file", "a JSONL file of prompts")
    if rows is None:
        return problems
    seen: dict[str, int] = {}
    count = 0
    for where, row in rows:
        lineno = int(where.rsplit(":", 1)[1])
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a JSON object with 'id' and 'prompt', got {type(row).__name__}")
            continue
        count += 1
        pid = row.get("id")
        if not isinstance(pid, str) or not pid.strip():
            problems.append(f"{where}: 'id' must be a non-empty string, got {pid!r}")
        elif pid in seen:
            problems.append(f"{where}: duplicate id {pid!r} (first on line {seen[pid]})")
        else:
            seen[pid] = lineno
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            shown = prompt if not isinstance(prompt, str) or len(prompt) < 40 else prompt[:40] + "..."
            problems.append(f"{where}: 'prompt' must be a non-empty string, got {shown!r}")
    if count == 0 and not problems:
        problems.append(f"{path}: prompt file is empty (no JSON lines)")
    if len(problems) > MAX_REPORTED:
        problems = problems[:MAX_REPORTED] + [f"{path}: ... and {len(problems) - MAX_REPORTED} more problems"]
    return problems


def load_prompts(path: str | Path) -> list[dict]:
    """[{"id", "prompt"}] in file order; raise PromptFileError listing the problems."""
    problems = prompt_file_problems(path)
    if problems:
        raise PromptFileError("\n".join(problems))
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append({"id": row["id"], "prompt": row["prompt"]})
    return rows
