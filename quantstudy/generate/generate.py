#!/usr/bin/env python
"""Greedy answers of one checkpoint to a prompt set (vLLM, chat template), plus the
teacher-forced next-token logprobs over bf16's answers, in one engine start.

Rule `generate` calls this; to debug one step by hand (serve env; bf16 first, since every
other scheme is teacher-forced over bf16's answers):

    .venv/serve/bin/python -m quantstudy.generate.generate --model-dir fixtures/tiny-llama --model tiny-llama \\
        --scheme bf16 --prompts data/prompts/fixture_prompts.jsonl \\
        --settings '{"max_tokens": 16, "logprobs_top_k": 64, "engine": {"dtype": "bfloat16", \\
        "max_model_len": 1024, "enforce_eager": true}, "env": {"VLLM_CPU_KVCACHE_SPACE": "1"}}' \\
        --output /tmp/g/bf16.jsonl --logprobs /tmp/g/bf16.logprobs.jsonl --meta /tmp/g/bf16.meta.json

Outputs: generations JSONL (one row per prompt: id, prompt, text, num_tokens,
finish_reason, prompt_token_ids, token_ids), logprobs JSONL (one row per prompt: the top-k
at each position of bf16's answer), and a meta JSON (settings, versions; written last).
"""

from __future__ import annotations

import json
import logging
import time

from quantstudy.core import atomic, cli, step
from quantstudy.core.checkpoint import CheckpointError, check_checkpoint
from quantstudy.core.runtime import add_checkpoint_args, engine_threads_env, offline_env, package_versions
from quantstudy.generate.prompts import PromptFileError, load_prompts
from quantstudy.similarity.divergence import answer_positions

log = logging.getLogger("generate")
GENERATIONS_FORMAT = "quantstudy.generations/1"


def read_reference(path: str) -> dict[str, dict]:
    """bf16's generation rows by prompt id."""
    rows = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                rows[row["id"]] = row
            except (ValueError, KeyError) as e:
                raise cli.StepError(f"{path}:{lineno}: not a generation row ({e})") from e
    return rows


def generate(model_dir, model, scheme, prompts, settings, reference_rows, output, logprobs_path, meta_path):
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    started = time.time()
    engine = dict(settings.get("engine", {}))
    top_k = int(settings["logprobs_top_k"])
    engine.setdefault("max_logprobs", top_k)  # vLLM refuses larger top-k requests (default 20)
    llm = LLM(model=model_dir, seed=settings["seed"], **engine)
    vocab = llm.llm_engine.model_config.get_vocab_size()
    k = min(top_k, vocab)
    log.info(
        "engine up in %.1f s; vocab %d, logprobs top-k %d (%s)",
        time.time() - started,
        vocab,
        k,
        "exact KL" if k >= vocab else "approximate KL",
    )

    # 1. Greedy answers, chat template applied by vLLM (the model's own template).
    greedy = SamplingParams(temperature=0.0, max_tokens=int(settings["max_tokens"]))
    chats = [[{"role": "user", "content": p["prompt"]}] for p in prompts]
    t0 = time.time()
    outs = llm.chat(chats, greedy, use_tqdm=False)
    gen_seconds = time.time() - t0
    rows = []
    for p, o in zip(prompts, outs, strict=True):
        c = o.outputs[0]
        rows.append(
            {
                "id": p["id"],
                "prompt": p["prompt"],
                "text": c.text,
                "num_tokens": len(c.token_ids),
                "finish_reason": c.finish_reason,
                "prompt_token_ids": list(o.prompt_token_ids),
                "token_ids": list(c.token_ids),
            }
        )
    log.info("%d answers, %d tokens in %.1f s", len(rows), sum(r["num_tokens"] for r in rows), gen_seconds)

    # 2. Teacher-forced logprobs over bf16's answers (bf16: the answers just written).
    ref = reference_rows if reference_rows is not None else {r["id"]: r for r in rows}
    missing = [p["id"] for p in prompts if p["id"] not in ref]
    if missing:
        raise cli.StepError(f"bf16 generations lack prompts {missing[:5]}: regenerate bf16 with the same prompt set")
    forced = [ref[p["id"]] for p in prompts if ref[p["id"]]["token_ids"]]
    t0 = time.time()
    tf = llm.generate(
        [TokensPrompt(prompt_token_ids=r["prompt_token_ids"] + r["token_ids"]) for r in forced],
        SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=k),
        use_tqdm=False,
    )
    lp_rows = [
        {"id": r["id"], "positions": answer_positions(o.prompt_logprobs, len(r["prompt_token_ids"]), r["token_ids"])}
        for r, o in zip(forced, tf, strict=True)
    ]
    tf_seconds = time.time() - t0
    log.info("teacher-forced logprobs over %d bf16 answers in %.1f s", len(lp_rows), tf_seconds)

    meta = {
        "format": GENERATIONS_FORMAT,
        "model": model,
        "scheme": scheme,
        "checkpoint": model_dir,
        "n_prompts": len(rows),
        "settings": settings,
        "vocab_size": vocab,
        "logprobs_top_k": k,
        "exact_kl": k >= vocab,
        "teacher_forced_over": "bf16",
        "seconds": {
            "total": round(time.time() - started, 2),
            "generate": round(gen_seconds, 2),
            "teacher_forced": round(tf_seconds, 2),
        },
        "versions": package_versions(["vllm", "transformers", "torch", "compressed-tensors"]),
    }
    # Rows first: the meta JSON lands last.
    atomic.write_jsonl(output, rows)
    atomic.write_jsonl(logprobs_path, lp_rows)
    atomic.write_json(meta_path, meta)
    return meta


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    add_checkpoint_args(ap)
    ap.add_argument("--prompts", required=True, help='prompt JSONL ({"id", "prompt"} per line)')
    ap.add_argument("--reference", nargs="?", help="bf16's generations JSONL (every scheme but bf16 itself)")
    ap.add_argument(
        "--settings", required=True, help="JSON: max_tokens, logprobs_top_k, seed, engine (vLLM args), env (variables)"
    )
    ap.add_argument("--output", required=True, help="generations JSONL (written atomically)")
    ap.add_argument("--logprobs", required=True, help="teacher-forced logprobs JSONL (written atomically)")
    ap.add_argument("--meta", required=True, help="settings + versions JSON (written atomically, last)")
    args = ap.parse_args(argv)
    settings = json.loads(args.settings)
    try:  # bad input is named before an engine starts
        prompts = load_prompts(args.prompts)
        check_checkpoint(args.model_dir, quantized=args.scheme != "bf16")
    except (PromptFileError, CheckpointError) as e:
        raise cli.StepError(e) from e
    if args.scheme != "bf16" and not args.reference:
        ap.error("--reference (bf16's generations) is required for a quantized scheme")
    reference = read_reference(args.reference) if args.reference else None
    offline_env(settings.get("env"))
    engine_threads_env()
    generate(
        args.model_dir, args.model, args.scheme, prompts, settings, reference, args.output, args.logprobs, args.meta
    )
    return 0


if __name__ == "__main__":  # vLLM spawns workers: the guard is required
    step.run(main)  # supervised: a finished step cannot fail in teardown
