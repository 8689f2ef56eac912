"""KL divergence from top-k logprobs, and correctness flips, on hand-made inputs."""

import math

import pytest

from quantstudy.similarity.divergence import (
    NotBinaryError,
    answer_positions,
    flip_counts,
    item_correctness,
    kl_position,
    kl_summary,
    pooled_flips,
    ratio_stderr,
)


def lps(probs):
    return [math.log(p) for p in probs]


def pos(token, probs, ids=None):
    ids = ids if ids is not None else list(range(len(probs)))
    return {"token": token, "ids": ids, "lps": lps(probs)}


def test_kl_exact_on_full_vocab():
    p, q = [0.5, 0.25, 0.25], [0.25, 0.5, 0.25]
    want = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    assert kl_position([0, 1, 2], lps(p), [0, 1, 2], lps(q), vocab_size=3) == pytest.approx(want, abs=1e-12)


def test_kl_identical_is_exactly_zero():
    p = [0.7, 0.2, 0.1]
    assert kl_position([0, 1, 2], lps(p), [0, 1, 2], lps(p), vocab_size=3) == 0.0
    assert kl_position([0, 1], lps(p[:2]), [0, 1], lps(p[:2]), vocab_size=1000) == 0.0


def test_kl_full_vocab_order_of_ids_does_not_matter_and_rounding_is_renormalized():
    p = [0.6, 0.3, 0.1]
    q = [x * (1 - 3e-8) for x in p]  # float32 softmax sums are off by ~1e-7
    kl = kl_position([2, 0, 1], lps([p[2], p[0], p[1]]), [0, 1, 2], lps(q), vocab_size=3)
    assert kl == pytest.approx(0.0, abs=1e-12) and kl >= 0.0


def test_kl_top_k_coarsened_to_listed_tokens_plus_tail():
    # vocab 10, k 2. P lists {0: .5, 1: .3} (tail .2); Q lists {0: .4, 1: .4} (tail .2).
    kl = kl_position([0, 1], lps([0.5, 0.3]), [0, 1], lps([0.4, 0.4]), vocab_size=10)
    want = 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.4) + 0.2 * math.log(0.2 / 0.2)
    assert kl == pytest.approx(want, abs=1e-12)


def test_kl_top_k_token_missing_from_q_uses_upper_bound():
    # P's token 1 is not in Q's top-2 {0: .6, 2: .3}; Q(1) <= min(.3, leftover .1) = .1.
    kl = kl_position([0, 1], lps([0.5, 0.3]), [0, 2], lps([0.6, 0.3]), vocab_size=10)
    want = 0.5 * math.log(0.5 / 0.6) + 0.3 * math.log(0.3 / 0.1) + 0.2 * math.log(0.2 / (1 - 0.7))
    assert kl == pytest.approx(want, abs=1e-12)


def test_answer_positions_from_vllm_prompt_logprobs():
    class L:
        def __init__(self, v):
            self.logprob = v

    plp = [None, {5: L(-0.1)}, {7: L(-0.5), 3: L(-1.0)}, {2: L(-0.2), 9: L(-2.0)}]
    out = answer_positions(plp, prompt_len=2, answer_ids=[3, 2])
    assert out == [{"token": 3, "ids": [7, 3], "lps": [-0.5, -1.0]}, {"token": 2, "ids": [2, 9], "lps": [-0.2, -2.0]}]
    with pytest.raises(ValueError, match="positions"):
        answer_positions(plp, prompt_len=1, answer_ids=[3, 2])


def test_kl_summary_pools_tokens_and_self_is_zero():
    ref = {"a": [pos(0, [0.5, 0.5]), pos(1, [0.9, 0.1])], "b": [pos(1, [0.2, 0.8])]}
    sch = {"a": [pos(0, [0.5, 0.5]), pos(1, [0.1, 0.9], ids=[0, 1])], "b": [pos(1, [0.8, 0.2])]}
    s = kl_summary(ref, ref, vocab_size=2)
    assert s["mean_per_token"] == 0.0 and s["top1_agreement"] == 1.0 and s["exact"] and s["n_tokens"] == 3
    s = kl_summary(ref, sch, vocab_size=2)
    k2 = 0.9 * math.log(9) + 0.1 * math.log(1 / 9)
    k3 = 0.2 * math.log(0.25) + 0.8 * math.log(4)
    assert s["mean_per_token"] == pytest.approx((0 + k2 + k3) / 3)
    assert s["per_prompt"]["a"]["kl_mean"] == pytest.approx(k2 / 2)
    assert s["top1_agreement"] == pytest.approx(1 / 3)  # only the tied first position agrees
    assert s["n_prompts"] == 2 and s["stderr"] is not None


def test_kl_summary_rejects_different_answers():
    with pytest.raises(ValueError, match="same bf16 answer"):
        kl_summary({"a": [pos(0, [1.0])]}, {"a": [pos(1, [1.0])]}, vocab_size=1)
    with pytest.raises(ValueError, match="different prompts"):
        kl_summary({"a": []}, {"b": []}, vocab_size=1)


def test_ratio_stderr():
    assert ratio_stderr([1.0], [2]) is None
    # equal per-token means in every cluster: no spread
    assert ratio_stderr([1.0, 2.0, 3.0], [1, 2, 3]) == pytest.approx(0.0)
    # R = 4/4 = 1; residuals 0-1*2=-2, 4-1*2=2 -> sqrt(2/1 * 8) / 4 = 1
    assert ratio_stderr([0.0, 4.0], [2, 2]) == pytest.approx(1.0)


def sample(doc, **metrics):
    return {"doc_id": doc, "filter": metrics.pop("filter", "none"), **metrics}


def test_flips_both_directions():
    ref = item_correctness([sample(0, acc=1.0), sample(1, acc=1.0), sample(2, acc=0.0), sample(3, acc=0.0)], "acc,none")
    sch = item_correctness([sample(0, acc=1.0), sample(1, acc=0.0), sample(2, acc=1.0), sample(3, acc=0.0)], "acc,none")
    f = flip_counts(ref, sch)
    assert (f["n"], f["flips"], f["correct_to_wrong"], f["wrong_to_correct"]) == (4, 2, 1, 1)
    assert f["flip_rate"] == 0.5 and f["correct_to_wrong_rate"] == 0.25 and f["wrong_to_correct_rate"] == 0.25
    assert f["bf16_accuracy"] == 0.5 and f["accuracy"] == 0.5  # same accuracy, yet half the items changed
    assert f["flip_rate_stderr"] == pytest.approx(math.sqrt(0.25 / 4))
    assert flip_counts(ref, ref)["flips"] == 0


def test_flips_use_the_metric_filter():
    rows = [sample(0, exact_match=1.0, filter="strict"), sample(0, exact_match=0.0, filter="loose")]
    assert item_correctness(rows, "exact_match,strict") == {0: True}
    assert item_correctness(rows, "exact_match,loose") == {0: False}


def test_flips_errors():
    with pytest.raises(NotBinaryError):
        item_correctness([sample(0, f1=0.4)], "f1,none")
    with pytest.raises(KeyError, match="acc"):
        item_correctness([sample(0, exact_match=1.0)], "acc,none")
    with pytest.raises(ValueError, match="twice"):
        item_correctness([sample(0, acc=1.0), sample(0, acc=0.0)], "acc,none")
    with pytest.raises(ValueError, match="different items"):
        flip_counts({0: True}, {1: True})


def test_pooled_flips():
    a = flip_counts({0: True, 1: False}, {0: False, 1: False})
    b = flip_counts({0: True, 1: True}, {0: True, 1: True})
    p = pooled_flips({"a": a, "b": b})
    assert (p["n"], p["flips"], p["flip_rate"]) == (4, 1, 0.25)


def test_group_items_are_told_apart_by_subtask():
    rows = [{**sample(0, acc=1.0), "subtask": "g_a"}, {**sample(0, acc=0.0), "subtask": "g_b"}]
    assert item_correctness(rows, "acc,none") == {"g_a/0": True, "g_b/0": False}
