#!/usr/bin/env python
"""Greedy answers of one checkpoint to a prompt set (vLLM, chat template), plus the
teacher-forced next-token logprobs over bf16's answers, in one engine start.

`--backend hf` does the same with transformers + compressed-tensors in torch eager mode (for
formats vLLM cannot serve; quantstudy/core/hfbackend.py says what that computes): greedy
`generate` one prompt at a time on the chat-templated prompt, and the logprobs from one
forward pass over prompt + bf16's answer, in the rows the vLLM path writes.

Rule `generate` calls this; to debug one step by hand (serve env; bf16 first, since every
other scheme is teacher-forced over bf16's answers):

    .venv/serve/bin/python -m quantstudy.generate.generate --model-dir fixtures/tiny-llama --model tiny-llama \\
        --scheme bf16 --prompts data/prompts/fixture_prompts.jsonl \\
        --settings '{"max_tokens": 16, "logprobs_top_k": 64, "engine": {"dtype": "bfloat16", \\
        "max_model_len": 1024, "enforce_eager": true}, "env": {"VLLM_CPU_KVCACHE_SPACE": "1"}}' \\
        --output /tmp/g/bf16.jsonl --logprobs /tmp/g/bf16.logprobs.jsonl --meta /tmp/g/bf16.meta.json

Outputs: generations JSONL (one row per prompt: id, prompt, text, num_tokens,
finish_reason, prompt_token_ids, token_ids), logprobs JSONL (one row per prompt: the top-k
at each position of bf16's answer), and a meta JSON (settings, backend, versions; written last).
"""

from __future__ import annotations

import json
import logging
import time

from quantstudy.core import atomic, cli, hfbackend, step
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


def forced_rows(prompts, rows, reference_rows) -> list[dict]:
    """The bf16 rows to teacher-force (bf16 itself: the answers just written), in prompt order;
    empty answers have no position to score."""
    ref = reference_rows if reference_rows is not None else {r["id"]: r for r in rows}
    missing = [p["id"] for p in prompts if p["id"] not in ref]
    if missing:
        raise cli.StepError(f"bf16 generations lack prompts {missing[:5]}: regenerate bf16 with the same prompt set")
    return [ref[p["id"]] for p in prompts if ref[p["id"]]["token_ids"]]


def run_vllm(model_dir, prompts, settings, reference_rows) -> dict:
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
    forced = forced_rows(prompts, rows, reference_rows)
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
    return {
        "rows": rows,
        "lp_rows": lp_rows,
        "vocab": vocab,
        "k": k,
        "started": started,
        "gen_seconds": gen_seconds,
        "tf_seconds": tf_seconds,
        "versions": package_versions(["vllm", "transformers", "torch", "compressed-tensors"]),
    }


def answer_text(tok, prompt_ids, answer) -> str:
    """The answer's text as vLLM's incremental detokenizer writes it: decoded after the prompt
    (so a word-initial space the tokenizer adds between words is kept), special tokens skipped."""
    before = tok.decode(prompt_ids, skip_special_tokens=True)
    both = tok.decode(list(prompt_ids) + list(answer), skip_special_tokens=True)
    return both[len(before) :] if both.startswith(before) else tok.decode(answer, skip_special_tokens=True)


def run_hf(model_dir, prompts, settings, reference_rows) -> dict:
    """The vLLM path's rows from transformers (torch eager): same greedy decoding on the same
    chat-templated prompt tokens, and the top-k of the teacher-forced distributions computed
    as vLLM's prompt_logprobs are (float32 log-softmax of the logits; the answer token is
    added where it is not in the top-k), then shaped by the same answer_positions."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    started = time.time()
    engine = settings.get("engine", {})
    dev, dtype = hfbackend.device(), hfbackend.dtype(engine)
    torch.manual_seed(int(settings["seed"]))
    tok = AutoTokenizer.from_pretrained(model_dir)
    llm = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    llm = llm.to(dev).eval()
    vocab = int(llm.config.get_text_config().vocab_size)
    k = min(int(settings["logprobs_top_k"]), vocab)
    quant = getattr(llm.config, "quantization_config", None)
    quant = (quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)) or "None"
    log.info(
        "hf backend loaded '%s' (quantization=%s) as %s on %s in %.1f s; vocab %d, logprobs top-k %d",
        model_dir,
        getattr(quant, "value", quant),
        dtype,
        dev,
        time.time() - started,
        vocab,
        k,
    )

    # 1. Greedy answers. vLLM's chat: the template rendered as text with the generation
    # prompt, tokenized without adding special tokens (the template writes its own BOS).
    # A fresh GenerationConfig: the checkpoint's sampling defaults (vLLM gets explicit
    # SamplingParams) must not leak in; stop at any EOS id of the tokenizer or the model.
    eos = llm.generation_config.eos_token_id
    eos = sorted(
        {
            *([eos] if isinstance(eos, int) else (eos or [])),
            *([tok.eos_token_id] if tok.eos_token_id is not None else []),
        }
    )
    greedy = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=int(settings["max_tokens"]),
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if eos else None),
    )
    rows = []
    t0 = time.time()
    with torch.inference_mode():
        for p in prompts:
            text = tok.apply_chat_template(
                [{"role": "user", "content": p["prompt"]}], add_generation_prompt=True, tokenize=False
            )
            prompt_ids = tok(text, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt_ids], device=dev)
            out = llm.generate(ids, attention_mask=torch.ones_like(ids), generation_config=greedy)
            answer = [int(t) for t in out[0, len(prompt_ids) :].tolist()]
            stopped = bool(answer) and answer[-1] in eos
            rows.append(
                {
                    "id": p["id"],
                    "prompt": p["prompt"],
                    "text": answer_text(tok, prompt_ids, answer),
                    "num_tokens": len(answer),
                    "finish_reason": "stop" if stopped else "length",
                    "prompt_token_ids": list(prompt_ids),
                    "token_ids": answer,
                }
            )
    gen_seconds = time.time() - t0
    log.info("%d answers, %d tokens in %.1f s", len(rows), sum(r["num_tokens"] for r in rows), gen_seconds)

    # 2. Teacher-forced logprobs: one forward pass over prompt + bf16's answer each.
    forced = forced_rows(prompts, rows, reference_rows)
    lp_rows = []
    t0 = time.time()
    with torch.inference_mode():
        for r in forced:
            seq = r["prompt_token_ids"] + r["token_ids"]
            logits = llm(torch.tensor([seq], device=dev)).logits[0]
            lps = torch.log_softmax(logits.float(), dim=-1)
            # prompt_logprobs[i] predicts token i (from logits at i - 1); vLLM's are None at 0
            # and here only the answer's positions are filled, the only ones read.
            n_prompt = len(r["prompt_token_ids"])
            dists = [None] * n_prompt
            for i in range(n_prompt, len(seq)):
                top_lps, top_ids = lps[i - 1].topk(k)
                dist = dict(zip(top_ids.tolist(), top_lps.tolist(), strict=True))
                dist.setdefault(seq[i], float(lps[i - 1, seq[i]]))  # vLLM adds the prompt token
                dists.append(dist)
            lp_rows.append({"id": r["id"], "positions": answer_positions(dists, n_prompt, r["token_ids"])})
    tf_seconds = time.time() - t0
    log.info("teacher-forced logprobs over %d bf16 answers in %.1f s", len(lp_rows), tf_seconds)
    return {
        "rows": rows,
        "lp_rows": lp_rows,
        "vocab": vocab,
        "k": k,
        "started": started,
        "gen_seconds": gen_seconds,
        "tf_seconds": tf_seconds,
        "device": dev,
        "served_as": hfbackend.served_as(model_dir, dtype),
        "versions": package_versions(["transformers", "torch", "compressed-tensors", "accelerate"]),
    }


def generate(
    model_dir, model, scheme, prompts, settings, reference_rows, output, logprobs_path, meta_path, backend="vllm"
):
    run = run_hf if backend == "hf" else run_vllm
    r = run(model_dir, prompts, settings, reference_rows)
    rows, lp_rows, vocab, k = r["rows"], r["lp_rows"], r["vocab"], r["k"]
    meta = {
        "format": GENERATIONS_FORMAT,
        "model": model,
        "scheme": scheme,
        "checkpoint": model_dir,
        "n_prompts": len(rows),
        "settings": settings,
        "backend": backend,
        "vocab_size": vocab,
        "logprobs_top_k": k,
        "exact_kl": k >= vocab,
        "teacher_forced_over": "bf16",
        "seconds": {
            "total": round(time.time() - r["started"], 2),
            "generate": round(r["gen_seconds"], 2),
            "teacher_forced": round(r["tf_seconds"], 2),
        },
        "versions": r["versions"],
    }
    if backend == "hf":
        meta.update(device=r["device"], served_as=r["served_as"])
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
    hfbackend.add_backend_arg(ap)
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
    if args.backend == "vllm":  # torch eager (hf) keeps the job's thread count
        engine_threads_env()
    generate(
        args.model_dir,
        args.model,
        args.scheme,
        prompts,
        settings,
        reference,
        args.output,
        args.logprobs,
        args.meta,
        args.backend,
    )
    return 0


if __name__ == "__main__":  # vLLM spawns workers: the guard is required
    step.run(main)  # supervised: a finished step cannot fail in teardown
