#!/usr/bin/env python
"""Quantize one model with one recipe (llmcompressor) into a compressed-tensors checkpoint.

Rule `quantize` calls this; to debug one step by hand (quantize env):

    .venv/quantize/bin/python -m quantstudy.quantize.quantize --model-dir fixtures/tiny-llama \\
        --scheme w4a16-int --recipe "$(cat recipe.json)" --calibration-set '{"path": "data/calibration/fixture_chat.jsonl"}' \\
        --output /tmp/w4a16
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path

from quantstudy.core import atomic, cli, step
from quantstudy.core.checkpoint import CheckpointError, check_checkpoint
from quantstudy.core.results import read_jsonl
from quantstudy.core.runtime import offline_env, package_versions
from quantstudy.quantize.calibration import HUB_DEFAULTS
from quantstudy.quantize.recipes import RecipeError, build, requires_calibration

log = logging.getLogger("quantize")


def load_calibration_texts(path: str, tokenizer, num_samples: int, seed: int, chat_template: bool) -> list[str]:
    """Chats from a JSONL file of {"messages": [...]}, rendered with the chat template."""
    try:
        chats = read_jsonl(path, lambda row: row["messages"])
    except ValueError as e:
        raise cli.StepError(f"{e}: expected a JSON object with 'messages' per line") from e
    if not chats:
        raise cli.StepError(f"{path}: no calibration samples")
    random.Random(seed).shuffle(chats)
    chats = chats[:num_samples]
    if len(chats) < num_samples:
        log.warning("%s holds %d samples, fewer than the %d asked for", path, len(chats), num_samples)
    if chat_template:
        return [tokenizer.apply_chat_template(m, tokenize=False) for m in chats]
    return ["\n".join(turn["content"] for turn in m) for m in chats]


def load_hub_calibration_texts(
    dataset_id: str, split: str, field: str, tokenizer, num_samples: int, seed: int, chat_template: bool
) -> list[str]:
    """Chats from a hub dataset (only with hub_access: cluster runs)."""
    from datasets import load_dataset

    ds = load_dataset(dataset_id, split=split).shuffle(seed=seed).select(range(num_samples))
    chats = [row[field] for row in ds]
    if chat_template:
        return [tokenizer.apply_chat_template(m, tokenize=False) for m in chats]
    return ["\n".join(turn["content"] for turn in m) for m in chats]


def calibration_features(texts: list[str], tokenizer, max_seq_length: int, chat_template: bool) -> dict:
    """Token ids of the calibration texts, tokenized here rather than by llmcompressor: a
    chat-templated text already starts with the template's BOS, and tokenizing it with special
    tokens (llmcompressor's way) put a second BOS before it. Plain text gets the tokenizer's own."""
    enc = tokenizer(texts, add_special_tokens=not chat_template, truncation=True, max_length=max_seq_length)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def skip_pinning_without_accelerator(torch) -> bool:
    """llmcompressor 0.14.0.1's AWQ pins its cached activations (pipelines/cache.py,
    IntermediatesCache.pin_memory) for faster host-to-device copies, and Tensor.pin_memory()
    raises "Cannot access accelerator device" on a CPU-only host. Pinning only speeds copies
    to a GPU, so without one it is skipped; with one, nothing changes."""
    if torch.accelerator.is_available():
        return False
    from llmcompressor.pipelines.cache import IntermediatesCache

    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    return True


def quantize(
    model_dir: str,
    scheme: str,
    recipe: dict,
    calibration: str | None,
    output: str,
    threads: int,
    hub: tuple[str, str, str] | None = None,
) -> dict:
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    started = time.time()
    # Built first: a recipe llmcompressor refuses fails here, naming its config key, before any weights load.
    try:
        modifiers = build(recipe, f"recipes.{scheme}")
    except RecipeError as e:
        raise cli.StepError(e) from e
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    kwargs = {}
    if requires_calibration(modifiers):
        cal = recipe.get("calibration")
        if not cal:
            raise cli.StepError(
                f"recipes.{scheme}: llmcompressor needs calibration data for it: add a calibration block"
            )
        if calibration is not None:
            texts = load_calibration_texts(
                calibration, tokenizer, cal["num_samples"], cal["seed"], cal["chat_template"]
            )
        elif hub is not None:
            texts = load_hub_calibration_texts(*hub, tokenizer, cal["num_samples"], cal["seed"], cal["chat_template"])
            calibration = f"hub:{hub[0]}[{hub[1]}]"
        else:
            raise cli.StepError(f"scheme {scheme}: the recipe needs calibration data: give --calibration-set")
        features = calibration_features(texts, tokenizer, cal["max_seq_length"], cal["chat_template"])
        kwargs = dict(
            dataset=Dataset.from_dict(features),
            num_calibration_samples=len(texts),
            max_seq_length=cal["max_seq_length"],
        )
        log.info("calibration: %d samples from %s, max_seq_length %d", len(texts), calibration, cal["max_seq_length"])
    log.info("recipe for %s: %s", scheme, modifiers)
    # llmcompressor draws the calibration order from torch's global RNG (RandomSampler): unseeded,
    # each run fed GPTQ another order and wrote other int4 weights (22 of 94 tensors differed).
    torch.manual_seed(recipe.get("calibration", {}).get("seed", 0))
    if skip_pinning_without_accelerator(torch):
        log.info("no accelerator: llmcompressor's activation-cache pinning skipped (CPU only)")
    oneshot(model=model, tokenizer=tokenizer, recipe=modifiers, **kwargs)
    with atomic.directory(output) as tmp:
        model.save_pretrained(tmp, save_compressed=True)
        tokenizer.save_pretrained(tmp)
        meta = {
            "scheme": scheme,
            "base_model": model_dir,
            "recipe": recipe,
            "calibration_file": calibration,
            "seconds": round(time.time() - started, 2),
            "versions": package_versions(["llmcompressor", "compressed-tensors", "transformers", "torch"]),
        }
        atomic.write_json(Path(tmp) / "quantstudy.json", meta)
        fmt = json.loads((Path(tmp) / "config.json").read_text()).get("quantization_config", {}).get("format")
        if fmt is None:
            raise cli.StepError(f"{output}: saved checkpoint has no quantization_config: quantization did not apply")
        log.info("saved %s checkpoint (format %s) in %.1f s", scheme, fmt, time.time() - started)
    return meta


def hub_source(spec: dict) -> tuple[str, str, str]:
    """(dataset id, split, messages field) of a hub calibration set; split and field default
    here, the one place (the schema cannot: they do not apply to a local file)."""
    return (
        spec["hub_dataset"],
        spec.get("split", HUB_DEFAULTS["split"]),
        spec.get("messages_field", HUB_DEFAULTS["messages_field"]),
    )


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("--model-dir", required=True, help="base checkpoint directory (bf16)")
    ap.add_argument("--scheme", required=True, help="scheme name, e.g. w4a16-int")
    ap.add_argument("--recipe", required=True, help="recipe as JSON (the config's recipes.<scheme>, merged)")
    ap.add_argument(
        "--calibration-set",
        type=cli.json_arg,
        default={},
        help="JSON: the recipe's calibration set (config calibration_sets.<name>): "
        '{"path": JSONL of {"messages": [...]} per line} or {"hub_dataset": id, "split", "messages_field"}; '
        "{} for a recipe without calibration",
    )
    ap.add_argument("--output", required=True, help="output checkpoint directory (written atomically)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    try:
        if Path(args.model_dir).exists() or not os.environ.get("QS_HUB_ACCESS"):
            check_checkpoint(args.model_dir)
    except CheckpointError as e:
        raise cli.StepError(e) from e
    offline_env()
    spec = args.calibration_set
    hub = hub_source(spec) if "hub_dataset" in spec else None
    quantize(args.model_dir, args.scheme, json.loads(args.recipe), spec.get("path"), args.output, args.threads, hub)
    return 0


if __name__ == "__main__":
    step.run(main)  # supervised: a finished step cannot fail in teardown
