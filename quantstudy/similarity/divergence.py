"""Beyond text overlap: how far a scheme's next-token distributions and per-item
correctness move away from bf16's. Stdlib only.

KL divergence (teacher-forced). bf16's greedy answer to each prompt is fed back, prompt +
answer, to every scheme's engine (bf16 included) with vLLM `prompt_logprobs=k`; at each
answer position this gives the top-k of the next-token distribution, P for bf16 and Q for
the scheme, conditioned on the same bf16 prefix. Per position KL(P || Q) in nats:
- exact when k covers the whole vocabulary (both distributions renormalized over it to
  remove float32 rounding), as on the fixture (vocabulary 64, k 64);
- otherwise the KL of the coarsened distributions over S = P's top-k tokens plus one
  bucket for everything else (a lower-bound-style estimate by the data-processing
  inequality). Q's probability of a token of S outside Q's own top-k is unknown; it is
  taken as min(Q's smallest listed probability, Q's leftover mass), an upper bound.
The figure reported is the mean over all answer tokens of all prompts, with a standard
error clustered by prompt (tokens of one answer are not independent).

Flips. From lm-eval's per-item samples of one task: an item's correctness is its primary
metric (0/1, e.g. acc or exact_match) under the metric's filter; a flip is an item whose
correctness differs between bf16 and the scheme (counted both ways, and each way).
"""

from __future__ import annotations

import math

EPS = 1e-10  # floor of the tail mass of Q where P still has some


# ---------------------------------------------------------------------------- KL


def _lp(x) -> float:
    """A vLLM Logprob object or a plain float."""
    return float(getattr(x, "logprob", x))


def answer_positions(prompt_logprobs, prompt_len: int, answer_ids) -> list[dict]:
    """Teacher-forced distributions at each answer position, from vLLM's prompt_logprobs of
    the sequence prompt + answer: [{"token": answer id, "ids": [...], "lps": [...]}] with
    ids sorted by decreasing logprob. prompt_logprobs[i] predicts token i."""
    answer_ids = list(answer_ids)
    if len(prompt_logprobs) != prompt_len + len(answer_ids):
        raise ValueError(
            f"prompt_logprobs cover {len(prompt_logprobs)} positions, expected {prompt_len} + {len(answer_ids)}"
        )
    out = []
    for j, tok in enumerate(answer_ids):
        dist = prompt_logprobs[prompt_len + j]
        if not dist:
            raise ValueError(f"no logprobs at answer position {j}")
        items = sorted(((int(t), _lp(v)) for t, v in dist.items()), key=lambda kv: (-kv[1], kv[0]))
        out.append({"token": int(tok), "ids": [t for t, _ in items], "lps": [lp for _, lp in items]})
    return out


def _log_normalized(lps: dict[int, float]) -> dict[int, float]:
    m = max(lps.values())
    logz = m + math.log(math.fsum(math.exp(v - m) for v in lps.values()))
    return {t: v - logz for t, v in lps.items()}


def kl_position(p_ids, p_lps, q_ids, q_lps, vocab_size: int) -> float:
    """KL(P || Q) at one position from top-k lists (see module doc); >= 0, exactly 0 for
    identical inputs."""
    p = dict(zip(map(int, p_ids), map(float, p_lps), strict=True))
    q = dict(zip(map(int, q_ids), map(float, q_lps), strict=True))
    if p == q:
        return 0.0
    if len(p) >= vocab_size and len(q) >= vocab_size:  # full distributions: exact
        p, q = _log_normalized(p), _log_normalized(q)
        kl = math.fsum(math.exp(lp) * (lp - q[t]) for t, lp in p.items() if lp > -math.inf)
        return max(kl, 0.0)
    q_listed = [math.exp(v) for v in q.values()]
    q_fill = min(min(q_listed), max(1.0 - math.fsum(q_listed), 0.0)) if q_listed else 0.0
    terms, p_mass, q_mass = [], 0.0, 0.0
    for t, lp in p.items():
        pv = math.exp(lp)
        qv = math.exp(q[t]) if t in q else q_fill
        p_mass += pv
        q_mass += qv
        if pv > 0:
            terms.append(pv * (lp - math.log(max(qv, EPS))))
    p_tail = max(1.0 - p_mass, 0.0)
    q_tail = max(1.0 - q_mass, EPS)
    if p_tail > 0:
        terms.append(p_tail * math.log(p_tail / q_tail))
    return max(math.fsum(terms), 0.0)


def _top1(position: dict):
    """The most likely token id (the smallest id among ties)."""
    return (
        min(zip(position["ids"], position["lps"], strict=True), key=lambda il: (-il[1], il[0]))[0]
        if position["ids"]
        else None
    )


def kl_summary(reference: dict[str, list[dict]], scheme: dict[str, list[dict]], vocab_size: int) -> dict:
    """Mean per-token KL(bf16 || scheme) over every answer position of every prompt.

    reference / scheme: {prompt id: answer_positions(...)} over the same bf16 answers.
    Also: the share of positions whose most likely next token is the same (top-1 agreement).
    """
    if set(reference) != set(scheme):
        only = sorted(set(reference) ^ set(scheme))[:5]
        raise ValueError(f"teacher-forced logprobs cover different prompts (e.g. {only})")
    per_prompt, sums, counts, agree = {}, [], [], 0
    for pid in sorted(reference):
        ref, sch = reference[pid], scheme[pid]
        if [x["token"] for x in ref] != [x["token"] for x in sch]:
            raise ValueError(f"prompt {pid!r}: the two logprob passes were not over the same bf16 answer")
        kls = [kl_position(r["ids"], r["lps"], s["ids"], s["lps"], vocab_size) for r, s in zip(ref, sch, strict=True)]
        agree += sum(1 for r, s in zip(ref, sch, strict=True) if _top1(r) == _top1(s))
        per_prompt[pid] = {"kl_mean": math.fsum(kls) / len(kls) if kls else None, "n_tokens": len(kls)}
        if kls:
            sums.append(math.fsum(kls))
            counts.append(len(kls))
    n_tokens = sum(counts)
    mean = math.fsum(sums) / n_tokens if n_tokens else None
    k = max((len(x["ids"]) for pos in reference.values() for x in pos), default=0)
    return {
        "mean_per_token": mean,
        "stderr": ratio_stderr(sums, counts),
        "n_tokens": n_tokens,
        "n_prompts": len(counts),
        "top1_agreement": agree / n_tokens if n_tokens else None,
        "exact": k >= vocab_size,
        "per_prompt": per_prompt,
    }


def ratio_stderr(sums: list[float], counts: list[int]) -> float | None:
    """Standard error of R = sum(sums) / sum(counts), clustered by unit (ratio estimator):
    sqrt(n / (n - 1) * sum((s_i - R c_i)^2)) / sum(c_i)."""
    n, total = len(sums), sum(counts)
    if n < 2 or total == 0:
        return None
    r = math.fsum(sums) / total
    resid = math.fsum((s - r * c) ** 2 for s, c in zip(sums, counts, strict=True))
    return math.sqrt(n / (n - 1) * resid) / total


# ---------------------------------------------------------------------------- flips


class NotBinaryError(ValueError):
    """The metric's per-item values are not 0/1, so 'correct' is undefined."""


def item_correctness(samples, metric: str) -> dict:
    """{doc_id: bool} from lm-eval per-item samples for metric "<name>,<filter>"."""
    name, _, filt = metric.partition(",")
    out = {}
    for row in samples:
        if "filter" in row and filt and row["filter"] != filt:
            continue
        if name not in row:
            raise KeyError(
                f"sample of doc {row.get('doc_id')!r} has no metric {name!r} "
                f"(has {sorted(k for k in row if not isinstance(row[k], (dict, list)))})"
            )
        v = row[name]
        if isinstance(v, bool) or v in (0, 1):
            correct = bool(v)
        else:
            raise NotBinaryError(f"metric {name!r} of doc {row.get('doc_id')!r} is {v!r}, not 0/1")
        # A group's rows carry their subtask; doc_ids restart in each subtask.
        doc = f"{row['subtask']}/{row['doc_id']}" if "subtask" in row else row["doc_id"]
        if doc in out:
            raise ValueError(f"doc {doc!r} appears twice for metric {metric!r}")
        out[doc] = correct
    return out


def flip_counts(reference: dict, scheme: dict) -> dict:
    """Items whose correctness differs between bf16 (reference) and the scheme."""
    if set(reference) != set(scheme):
        diff = sorted(set(reference) ^ set(scheme), key=str)[:5]
        raise ValueError(f"the two runs scored different items (e.g. doc_id {diff}): same task settings?")
    n = len(reference)
    c2w = sum(1 for d in reference if reference[d] and not scheme[d])
    w2c = sum(1 for d in reference if not reference[d] and scheme[d])

    def rate(k):
        return k / n if n else None

    return {
        "n": n,
        "flips": c2w + w2c,
        "correct_to_wrong": c2w,
        "wrong_to_correct": w2c,
        "flip_rate": rate(c2w + w2c),
        "correct_to_wrong_rate": rate(c2w),
        "wrong_to_correct_rate": rate(w2c),
        "flip_rate_stderr": binomial_stderr(rate(c2w + w2c), n),
        "correct_to_wrong_rate_stderr": binomial_stderr(rate(c2w), n),
        "wrong_to_correct_rate_stderr": binomial_stderr(rate(w2c), n),
        "bf16_accuracy": rate(sum(reference.values())),
        "accuracy": rate(sum(scheme.values())),
    }


def binomial_stderr(p: float | None, n: int) -> float | None:
    if p is None or n < 2:
        return None
    return math.sqrt(p * (1 - p) / n)


def pooled_flips(per_task: dict[str, dict]) -> dict:
    """Flip counts summed over tasks (items of every task weigh the same)."""
    keys = ("n", "flips", "correct_to_wrong", "wrong_to_correct")
    tot = {k: sum(t[k] for t in per_task.values()) for k in keys}
    n = tot["n"]
    tot["flip_rate"] = tot["flips"] / n if n else None
    tot["correct_to_wrong_rate"] = tot["correct_to_wrong"] / n if n else None
    tot["wrong_to_correct_rate"] = tot["wrong_to_correct"] / n if n else None
    tot["flip_rate_stderr"] = binomial_stderr(tot["flip_rate"], n)
    return tot
