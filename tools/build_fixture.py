#!/usr/bin/env python
"""Build the committed test fixture: a tiny word-level Llama plus two local lm-eval tasks.

Run from the repository root with the quantize environment:

    .venv/quantize/bin/python tools/build_fixture.py

It writes (paths relative to the repo root, all overridable):

* ``fixtures/tiny-llama/``                bf16 LlamaForCausalLM, word-level tokenizer, chat template
* ``data/tasks/fixture/*.jsonl|*.yaml``   ``qs_count_letter`` (multiple choice) and ``qs_reverse``
                                          (generate_until) with held-out test items
* ``data/calibration/fixture_chat.jsonl`` chat-format calibration samples (training distribution)
* ``data/prompts/fixture_prompts.jsonl``  chat prompts for generated-text comparisons

Everything is deterministic given ``--seed`` (and the thread count, which fixes the order of
floating-point reductions during training).

The model is deliberately *not* saturated: a fully trained fixture answers with such certainty
that fp8 / int8 / int4 quantization flips no answer, which makes the quantization study's
comparisons vacuous. The defaults land near 0.9 on the held-out items of both tasks (figures
below, measured with lm-eval).

Measured with the defaults (seed 0, 2 threads, AMD Zen4): training 800 steps in ~200 s; lm-eval
0.4.13 with vLLM 0.32 CPU in bf16, 0-shot, 400 held-out items each: qs_count_letter acc 0.895,
qs_reverse exact_match (strict) 0.910; 58/64 of the comparison prompts answered correctly via
the chat template. The late-training forgetting of reverse (see COUNT_SHARE) is sensitive to
floating-point detail, so other seeds, thread counts or CPUs can land elsewhere (e.g. 0.73 or
1.00 on reverse): re-check with lm-eval after changing any of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path

# --------------------------------------------------------------------------------------------
# Vocabulary and text formats. The task YAMLs are generated from these same constants, so the
# text the model is trained on is exactly the text lm-eval presents at evaluation time.
# --------------------------------------------------------------------------------------------

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]
DIGITS = [str(d) for d in range(10)]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
# Task words, punctuation and chat-role words; 4 + 10 + 26 + 24 = 64 entries in all.
WORDS = [
    "how", "many", "times", "does", "letter", "appear", "in", "reverse",
    "answer", "the", "sequence", "what", "is", "of", "count", "word",
    "and", ":", "?", ".", ",", "user", "assistant", "system",
]  # fmt: skip

# Appended to the question in the plain (non-chat) format; lm-eval then adds target_delimiter " ".
ANSWER_CUE = " answer :"
TARGET_DELIMITER = " "
COUNT_CHOICES = ["0", "1", "2", "3"]  # 4 choices, gold uniformly distributed over them
# Inclusive range of the letter-sequence length in count_letter: test items use 5-9 letters;
# training also shows shorter sequences (3-4), which gets the model off its initial plateau on
# counting far sooner (with 5-9 only it stayed at chance for hundreds of steps).
COUNT_TEST_LEN = (5, 9)
COUNT_TRAIN_LEN = (3, 9)
REVERSE_LEN = 4
# Share of count_letter in training batches until --reverse-stop; after it, batches are count_letter
# only. Reverse is learnt within ~100 steps and then stays at 1.000 exact match, while counting
# needs the whole run (and reverse examples early on, which get it off its plateau). Dropping
# reverse part-way lets it decay a little while counting keeps improving, so both end below
# saturation.
COUNT_SHARE = 0.75
CHAT_SHARE = 0.4  # share of training sequences in the chat format
TEST_PERCENT = 10  # share of the item space (by hash) reserved for held-out test items

# Jinja chat template. Every piece is separated by spaces so that the whitespace pre-tokenizer
# splits it into vocabulary words; BOS is part of the template (as for Llama-3), so chat text must
# be tokenized with add_special_tokens=False (vLLM chat and lm-eval do this), and each turn ends
# with EOS so that a generated assistant turn stops by itself.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    " {{ message['role'] }} : {{ message['content'] }} {{ eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %} assistant :{% endif %}"
)


def build_vocab() -> list[str]:
    """Return the 64-entry word-level vocabulary; the position of a word is its token id."""
    vocab = SPECIALS + DIGITS + LETTERS + WORDS
    assert len(vocab) == len(set(vocab)) == 64, len(vocab)
    return vocab


# --------------------------------------------------------------------------------------------
# Item generators and the held-out split (pure functions).
# --------------------------------------------------------------------------------------------


def item_hash(task: str, key: str) -> int:
    """Stable 64-bit hash of an item's identity (task name + its defining content)."""
    digest = hashlib.sha256(f"{task}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def is_test_item(task: str, key: str, test_percent: int = TEST_PERCENT) -> bool:
    """True if the item belongs to the held-out test side of the split.

    The split depends only on the item's content, never on generation order, so training can
    sample freely and reject test-side items: no test item is ever seen in training.
    """
    return item_hash(task, key) % 100 < test_percent


def count_letter_question(letter: str, letters: list[str]) -> str:
    """Question text of a count_letter item (the chat user turn; plain format adds ANSWER_CUE)."""
    # The asked-for letter comes last, at a fixed distance from the answer position: counting is
    # then learnt within the training budget (with the letter first, the model stayed at chance).
    return f"in the sequence {' '.join(letters)} how many times does letter {letter} appear ?"


def reverse_question(letters: list[str]) -> str:
    """Question text of a reverse item."""
    return f"reverse the sequence {' '.join(letters)}"


def gen_count_letter(rng: random.Random, count: int | None = None, lengths: tuple[int, int] = COUNT_TEST_LEN) -> dict:
    """Draw one count_letter item: how often does a letter occur in a short letter sequence.

    The answer is drawn first (uniformly over 0..3 unless given), then the sequence is built
    around it, so the answer distribution carries no information a model could exploit without
    reading the question.
    """
    if count is None:
        count = rng.randrange(len(COUNT_CHOICES))
    length = rng.randint(*lengths)
    letter = rng.choice(LETTERS)
    others = [c for c in LETTERS if c != letter]
    letters = [rng.choice(others) for _ in range(length)]
    for pos in rng.sample(range(length), count):
        letters[pos] = letter
    return {
        "key": f"{letter}:{''.join(letters)}",
        "letter": letter,
        "sequence": " ".join(letters),
        "question": count_letter_question(letter, letters),
        "choices": list(COUNT_CHOICES),
        "label": count,
        "answer": COUNT_CHOICES[count],
    }


def gen_reverse(rng: random.Random, **_ignored) -> dict:
    """Draw one reverse item: a 4-letter sequence (letters may repeat) and its reversal."""
    letters = [rng.choice(LETTERS) for _ in range(REVERSE_LEN)]
    return {
        "key": "".join(letters),
        "sequence": " ".join(letters),
        "question": reverse_question(letters),
        "answer": " ".join(reversed(letters)),
    }


GENERATORS = {"count_letter": gen_count_letter, "reverse": gen_reverse}


def draw_item(task: str, rng: random.Random, test: bool, **kwargs) -> dict:
    """Draw items until one falls on the requested side (test or train) of the hash split.

    Test-side draws use the test distribution; train-side draws the (wider) training one.
    """
    if task == "count_letter":
        kwargs.setdefault("lengths", COUNT_TEST_LEN if test else COUNT_TRAIN_LEN)
    while True:
        item = GENERATORS[task](rng, **kwargs)
        if is_test_item(task, item["key"]) == test:
            return item


def make_split(task: str, rng: random.Random, n: int, test: bool) -> list[dict]:
    """Return n distinct items of one side of the split (count_letter: exactly uniform labels)."""
    items: list[dict] = []
    seen: set[str] = set()
    while len(items) < n:
        kwargs = {}
        if task == "count_letter":
            kwargs["count"] = len(items) % len(COUNT_CHOICES)  # round-robin: exact balance
            kwargs["lengths"] = COUNT_TEST_LEN  # few-shot pool looks like the test items
        item = draw_item(task, rng, test, **kwargs)
        if item["key"] in seen:
            continue
        seen.add(item["key"])
        items.append(item)
    rng.shuffle(items)
    for i, item in enumerate(items):
        item["id"] = f"{task}-{'test' if test else 'train'}-{i:04d}"
    return items


# --------------------------------------------------------------------------------------------
# Tokenizer and model.
# --------------------------------------------------------------------------------------------


def build_tokenizer():
    """Word-level tokenizer (whitespace split, BOS added by the post-processor) wrapped for HF."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = build_vocab()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(SPECIALS)
    bos_id = vocab.index(BOS)
    # BOS from the post-processor (not add_bos_token): this is what lm-eval and vLLM honour.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B:1", special_tokens=[(BOS, bos_id)]
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=8192,
        padding_side="left",  # batched generation needs left padding
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_model(vocab_size: int, bos_id: int, eos_id: int, pad_id: int, seed: int):
    """Randomly initialised 1.06M-parameter Llama; every Linear input is a multiple of 128."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=32,
        hidden_act="silu",
        max_position_embeddings=8192,  # RoPE: lets benchmarks send 1-2k-token prompts
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


# --------------------------------------------------------------------------------------------
# Training data: both tasks, in the lm-eval plain format and in the chat format.
# --------------------------------------------------------------------------------------------


def training_example(
    item: dict, rng: random.Random, tokenizer, chat_share: float = CHAT_SHARE
) -> tuple[list[int], int]:
    """Token ids of one training sequence and the index where the answer (the loss) starts.

    Formats:
    * plain (1 - chat_share): "<bos> {question} answer : {answer} <eos>" -- exactly lm-eval's
      0-shot context plus target_delimiter + target.
    * chat (chat_share): the chat template with the user turn and generation prompt, then
      "{answer} <eos>". Half of these put ANSWER_CUE into the user turn (what lm-eval
      --apply_chat_template sends); a tenth carry a doubled BOS, as produced by code that
      tokenizes rendered chat text with add_special_tokens=True, so that slip does not derail
      the model.
    """
    answer_ids = tokenizer.encode(item["answer"], add_special_tokens=False)
    answer_ids.append(tokenizer.eos_token_id)
    if rng.random() >= chat_share:
        prompt_ids = tokenizer.encode(item["question"] + ANSWER_CUE, add_special_tokens=True)
    else:
        content = item["question"] + (ANSWER_CUE if rng.random() < 0.5 else "")
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer.encode(text, add_special_tokens=rng.random() < 0.1)
    return prompt_ids + answer_ids, len(prompt_ids)


def make_batch(
    rng: random.Random, tokenizer, batch_size: int, count_share: float = COUNT_SHARE, chat_share: float = CHAT_SHARE
):
    """A right-padded batch of train-side items of both tasks with answer-only labels."""
    import torch

    seqs = []
    for _ in range(batch_size):
        task = "count_letter" if rng.random() < count_share else "reverse"
        item = draw_item(task, rng, test=False)
        seqs.append(training_example(item, rng, tokenizer, chat_share))
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((batch_size, width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((batch_size, width), -100, dtype=torch.long)
    attention = torch.zeros((batch_size, width), dtype=torch.long)
    for row, (ids, start) in enumerate(seqs):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, start : len(ids)] = torch.tensor(ids[start:])
        attention[row, : len(ids)] = 1
    return input_ids, attention, labels


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to peak, then cosine decay to 0 at the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(model, tokenizer, args) -> float:
    """Train in fp32 on CPU; returns wall-clock seconds.

    The step order (seed, rng stream, lr, batch, forward, zero_grad, backward, clip, step) is
    part of the fixture's identity: the defaults were tuned on exactly this sequence.
    """
    import torch

    torch.manual_seed(args.seed)
    rng = random.Random(f"{args.seed}-train")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()
    start = time.time()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.warmup, args.lr)
        share = COUNT_SHARE if step < args.reverse_stop else 1.0
        input_ids, attention, labels = make_batch(rng, tokenizer, args.batch_size, share)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d} lr {opt.param_groups[0]['lr']:.2e} loss {loss.item():.4f} "
                  f"({time.time() - start:.0f}s)", flush=True)  # fmt: skip
    model.eval()
    return time.time() - start


# --------------------------------------------------------------------------------------------
# Quick self-check mirroring lm-eval's scoring (the real figures come from lm-eval itself).
# --------------------------------------------------------------------------------------------


def quick_eval(model, tokenizer, count_items: list[dict], reverse_items: list[dict]) -> dict:
    """0-shot accuracy (loglikelihood of each choice) and greedy exact match on the test items."""
    import torch

    correct = 0
    with torch.no_grad():
        choice_ids = [tokenizer.convert_tokens_to_ids(c) for c in COUNT_CHOICES]
        for item in count_items:
            ids = tokenizer.encode(item["question"] + ANSWER_CUE)
            logits = model(torch.tensor([ids])).logits[0, -1]
            correct += int(int(torch.argmax(logits[choice_ids])) == item["label"])
        exact = 0
        for item in reverse_items:
            ids = tokenizer.encode(item["question"] + ANSWER_CUE)
            out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            text = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
            exact += int(text == item["answer"])
    return {"count_letter_acc": correct / len(count_items), "reverse_em": exact / len(reverse_items)}


# --------------------------------------------------------------------------------------------
# Writers.
# --------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=False) + "\n")


def task_row(item: dict) -> dict:
    """The fields a task file keeps (the hash key is internal)."""
    return {"id": item["id"], **{k: v for k, v in item.items() if k not in ("id", "key")}}


def yaml_str(s: str) -> str:
    """Double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(s)


def write_task_yamls(task_dir: Path, rel_task_dir: str) -> None:
    """lm-eval task configs; data paths are relative to the repo root (lm-eval's working dir)."""
    header = "# Generated by tools/build_fixture.py -- edit that script, not this file.\n"
    count_yaml = f"""{header}task: qs_count_letter
output_type: multiple_choice
dataset_path: json
dataset_kwargs:
  data_files:
    train: {rel_task_dir}/count_letter.train.jsonl
    test: {rel_task_dir}/count_letter.test.jsonl
training_split: train
fewshot_split: train
test_split: test
doc_to_text: {yaml_str("{{question}}" + ANSWER_CUE)}
doc_to_choice: choices
doc_to_target: label
target_delimiter: {yaml_str(TARGET_DELIMITER)}
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
    reverse_yaml = f"""{header}task: qs_reverse
output_type: generate_until
dataset_path: json
dataset_kwargs:
  data_files:
    train: {rel_task_dir}/reverse.train.jsonl
    test: {rel_task_dir}/reverse.test.jsonl
training_split: train
fewshot_split: train
test_split: test
doc_to_text: {yaml_str("{{question}}" + ANSWER_CUE)}
doc_to_target: answer
target_delimiter: {yaml_str(TARGET_DELIMITER)}
generation_kwargs:
  # The model ends its answer with <eos>; newlines cannot occur (whitespace tokenizer).
  until:
    - {yaml_str(EOS)}
    - "\\n"
  max_gen_toks: 8
  do_sample: false
  temperature: 0.0
filter_list:
  # Decoding joins word tokens with spaces ("d c b a"); take the first 4 space-separated letters.
  - name: strict
    filter:
      - function: regex
        regex_pattern: "([a-z] [a-z] [a-z] [a-z])"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: false
    ignore_punctuation: false
metadata:
  version: 1.0
"""
    (task_dir / "qs_count_letter.yaml").write_text(count_yaml)
    (task_dir / "qs_reverse.yaml").write_text(reverse_yaml)


def chat_record(item: dict) -> dict:
    return {"messages": [{"role": "user", "content": item["question"]},
                         {"role": "assistant", "content": item["answer"]}]}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    # Tuned for seed 0 on 2 threads: bf16 held-out scores land near 0.9 on both tasks. lr 3e-3
    # (as for the saturated 700-step model) left counting stuck at chance with these prompts.
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--reverse-stop", type=int, default=375,
                   help="step from which batches hold count_letter only")  # fmt: skip
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--n-train", type=int, default=100, help="few-shot pool size per task")
    p.add_argument("--n-calib", type=int, default=512)
    p.add_argument("--n-prompts", type=int, default=64)
    p.add_argument("--model-dir", type=Path, default=Path("fixtures/tiny-llama"))
    p.add_argument("--task-dir", type=Path, default=Path("data/tasks/fixture"))
    p.add_argument("--calib-out", type=Path, default=Path("data/calibration/fixture_chat.jsonl"))
    p.add_argument("--prompts-out", type=Path, default=Path("data/prompts/fixture_prompts.jsonl"))
    p.add_argument("--skip-train", action="store_true", help="write data/tokenizer only")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    # ---- tasks ---------------------------------------------------------------------------
    splits = {}
    for task in ("count_letter", "reverse"):
        rng = random.Random(f"{args.seed}-{task}-data")
        test = make_split(task, rng, args.n_test, test=True)
        train_pool = make_split(task, rng, args.n_train, test=False)
        # The held-out guarantee: no test item shares its identity with a training item, and
        # every test item lies on the test side of the hash split (which training rejects).
        assert not {i["key"] for i in test} & {i["key"] for i in train_pool}
        assert all(is_test_item(task, i["key"]) for i in test)
        assert not any(is_test_item(task, i["key"]) for i in train_pool)
        splits[task] = (test, train_pool)
        args.task_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(args.task_dir / f"{task}.test.jsonl", [task_row(i) for i in test])
        write_jsonl(args.task_dir / f"{task}.train.jsonl", [task_row(i) for i in train_pool])
    labels = [i["label"] for i in splits["count_letter"][0]]
    assert all(labels.count(k) == len(labels) // 4 for k in range(4)), "count_letter not balanced"
    write_task_yamls(args.task_dir, args.task_dir.as_posix())

    # ---- calibration (train side) and comparison prompts (test side: unseen questions) ----
    rng = random.Random(f"{args.seed}-calib")
    calib = [draw_item("count_letter" if n % 2 == 0 else "reverse", rng, test=False)
             for n in range(args.n_calib)]  # fmt: skip
    test_keys = {i["key"] for task in splits for i in splits[task][0]}
    assert not test_keys & {i["key"] for i in calib}, "calibration leaks test items"
    write_jsonl(args.calib_out, [chat_record(i) for i in calib])
    rng = random.Random(f"{args.seed}-prompts")
    prompts = [draw_item("count_letter" if n % 2 == 0 else "reverse", rng, test=True)
               for n in range(args.n_prompts)]  # fmt: skip
    # "reference" (the correct answer) is extra to {"id", "prompt"}; consumers may ignore it.
    rows = [{"id": f"p{n:03d}", "prompt": i["question"], "reference": i["answer"]}
            for n, i in enumerate(prompts)]  # fmt: skip
    write_jsonl(args.prompts_out, rows)

    # ---- tokenizer + model ------------------------------------------------------------------
    tokenizer = build_tokenizer()
    unk = tokenizer.unk_token_id
    for item in calib + prompts:  # every word of the chat text must be in the vocabulary
        text = tokenizer.apply_chat_template(chat_record(item)["messages"], tokenize=False)
        assert unk not in tokenizer.encode(text, add_special_tokens=False), text
    if args.skip_train:
        return
    model = build_model(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                        tokenizer.pad_token_id, args.seed)  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params:,}", flush=True)
    seconds = train(model, tokenizer, args)
    print(f"training: {args.steps} steps in {seconds:.0f}s", flush=True)

    model = model.to(torch.bfloat16)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    args.model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.model_dir)
    tokenizer.save_pretrained(args.model_dir)

    scores = quick_eval(model, tokenizer, splits["count_letter"][0], splits["reverse"][0])
    print("quick bf16 held-out check (own loop, not lm-eval):", json.dumps(scores), flush=True)


if __name__ == "__main__":
    main()
