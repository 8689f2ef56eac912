"""GGUF file -> plain bf16 safetensors checkpoint (quantize env: torch, transformers, gguf).

transformers dequantizes a GGUF file on load (`from_pretrained(dir, gguf_file=...)`) but
keeps `config.quantization_config`, and then refuses `save_pretrained`. Dropping that key and
loading the state dict into a plain model of the same architecture gives an ordinary
checkpoint that llmcompressor, lm-eval and vLLM all read like any other.

Note: the weights of such a checkpoint sit on the GGUF file's quantization grid (Q4_1:
4-bit, blocks of 32); as a bf16 baseline it is the GGUF model, not the original bf16 one.
"""

from __future__ import annotations

import json
from pathlib import Path

from quantstudy.core import atomic


def load_gguf(gguf_path: str | Path):
    """(model, tokenizer) as transformers loads the GGUF file: weights dequantized to bf16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(gguf_path)
    tok = AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.bfloat16)
    return model.eval(), tok


def to_plain(model):
    """The same weights in a model without GGUF quantization_config (save_pretrained works)."""
    import torch

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config).to(torch.bfloat16)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    # Tied embeddings: lm_head.weight is the embedding and may be absent from the state dict.
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(
            f"GGUF weights do not fit {type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if config.tie_word_embeddings:
        plain.tie_weights()
    return plain.eval()


def fix_special_tokens(tokenizer, config) -> dict:
    """Make the tokenizer's eos/pad the model's (GGUF metadata): transformers' GGUF tokenizer
    loader gave SmolLM2's <|im_start|> (its bos) as eos, so an engine that stops on the
    tokenizer's eos would never stop a chat turn (<|im_end|>). Returns what changed."""
    changed = {}
    for name in ("eos", "pad"):
        want = getattr(config, f"{name}_token_id", None)
        if isinstance(want, list):
            want = want[0]
        if isinstance(want, int) and getattr(tokenizer, f"{name}_token_id") != want:
            token = tokenizer.convert_ids_to_tokens(want)
            setattr(tokenizer, f"{name}_token", token)
            changed[name] = token
    return changed


def greedy_answer(model, tokenizer, prompt: str, max_new_tokens: int = 32) -> str:
    """The model's greedy answer to one user turn, through its chat template."""
    import torch

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def save_checkpoint(model, tokenizer, output: str | Path, meta: dict) -> None:
    """Write model + tokenizer (with its chat template) + quantstudy.json atomically."""
    with atomic.directory(output) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        cfg = json.loads((Path(tmp) / "config.json").read_text())
        if "quantization_config" in cfg:
            raise ValueError(f"{output}: config.json still has a quantization_config")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{output}: the GGUF file carries no chat template (tokenizer.chat_template)")
        atomic.write_json(Path(tmp) / "quantstudy.json", meta)


def prepare(gguf_path: str | Path, output: str | Path, check_prompt: str | None = None) -> dict:
    """GGUF -> checkpoint at `output`; returns the metadata written to quantstudy.json
    (parameter count, and the greedy answer to `check_prompt` before and after, which must
    be equal: the conversion lost nothing)."""
    model, tok = load_gguf(gguf_path)
    meta = {"gguf": str(gguf_path), "parameters": sum(p.numel() for p in model.parameters())}
    before = greedy_answer(model, tok, check_prompt) if check_prompt else None
    meta["tokenizer_fixed"] = fix_special_tokens(tok, model.config)
    plain = to_plain(model)
    del model
    if check_prompt:
        after = greedy_answer(plain, tok, check_prompt)
        if after != before:
            raise ValueError(f"converted model answers {after!r} to {check_prompt!r}; the GGUF model {before!r}")
        meta["check"] = {"prompt": check_prompt, "answer": after}
    save_checkpoint(plain, tok, output, meta)
    return meta
