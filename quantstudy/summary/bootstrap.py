"""Paired bootstrap confidence intervals of recovery (quantized score / bf16 score x 100).

Both models answer the same items, so the two scores are resampled *together*: each
resample draws item indices with replacement (the same indices for bf16 and the scheme),
recomputes both scores and their ratio; the interval is the percentile interval of those
ratios. Pairing removes the item-difficulty variance the two scores share, which is why
it is much narrower than an interval built from the two standard errors.

Items are lm-eval's per-item samples (quantstudy/evaluate/evaluate.py writes them beside each eval
JSON): one row per (doc_id, filter), the metric's per-item value under its bare name
(`"exact_match": 1.0` in the row whose `"filter"` is `"strict"` for "exact_match,strict").
A value is a number (0/1 or a partial score) or, for instance-level metrics such as
IFEval's inst_level_strict_acc, a list whose items are pooled (lm-eval flattens them), so
every item is kept as (numerator, denominator) and a mean is sum(num) / sum(den). Rows of a
group task carry the `subtask` they came from; items are matched by (subtask, doc_id).

A statistic is built from *components*: one per-item mean each, resampled within its
*stratum* (components in the same stratum share the drawn indices, e.g. IFEval's prompt-
and instance-level accuracy of the same prompts). A task metric is one component; a suite
is the union of its tasks' components, each task its own stratum (stratified resampling),
with the statistic the mean over tasks, matching quantstudy/summary/summary.py's suite average.

A lower-is-better metric (perplexity; direction from lm-eval's `higher_is_better`) has
recovery = bf16 / scheme x 100, so a rise is a recovery below 100 like any loss. Perplexity
is not a per-item mean: lm-eval's weighted_perplexity is exp(-sum loglikelihood / sum words)
over items whose per-item value is the pair (loglikelihood, words); such a metric is one
component of (-loglikelihood, words), transformed by exp (bits_per_byte: / ln 2).

Flags: `drop_significant` when the whole interval lies below 100, `gain_significant`
when it lies above 100; an interval containing 100 sets neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantstudy.core.results import read_jsonl

# Index matrices are drawn in blocks of at most this many entries (memory: MMLU has 14k
# items; 2000 x 14k int64 at once would be 224 MB). Fixed, so results do not depend on it.
_BLOCK_ENTRIES = 2_000_000

Key = tuple  # (subtask or None, doc_id)
Values = dict  # {Key: (numerator, denominator)}


class NotPerItemError(ValueError):
    """A metric whose per-item values cannot be bootstrapped (missing, or not a number)."""


def _lean(row: dict) -> dict:
    """A sample row without its prompts, responses and documents (kilobytes per item on real
    tasks; a paper-scale summary holds every file at once): ids and metric values only."""
    return {
        k: v
        for k, v in row.items()
        if k in ("doc_id", "filter", "subtask")
        or isinstance(v, (bool, int, float))
        or (isinstance(v, list) and v and all(isinstance(x, (bool, int, float)) for x in v))
    }


def read_samples(path) -> list[dict]:
    """lm-eval per-item samples (JSONL), metric values only; errors name the file and line."""
    return read_jsonl(path, _lean)


def item_values(samples: list[dict], metric: str, subtask: str | None = None) -> Values:
    """{(subtask, doc_id): (num, den)} of metric "<name>,<filter>" from lm-eval samples.

    subtask: only rows of that subtask (group tasks); None = every row."""
    name, _, filt = metric.partition(",")
    out: Values = {}
    for row in samples:
        if row.get("filter", filt) != filt or (subtask is not None and row.get("subtask") != subtask):
            continue
        key = (row.get("subtask"), row.get("doc_id"))
        if name not in row:
            raise NotPerItemError(f"doc {key[1]!r} has no per-item value of {name!r} (filter {filt!r})")
        if key in out:
            raise ValueError(f"metric {metric!r}: doc {key[1]!r} (subtask {key[0]!r}) appears twice")
        out[key] = _num_den(row[name], name, key)
    return out


# lm-eval aggregations of per-item (loglikelihood, count) pairs: the transform of the
# weighted mean of -loglikelihood per count (lm_eval/api/metrics.py).
WEIGHTED_AGGREGATIONS = {"weighted_perplexity": np.exp, "bits_per_byte": lambda m: m / math.log(2)}
# lm-eval's default aggregation of loglikelihood_rolling's metrics, where the eval JSON records none.
ROLLING_DEFAULTS = {
    "word_perplexity": "weighted_perplexity",
    "byte_perplexity": "weighted_perplexity",
    "bits_per_byte": "bits_per_byte",
}


def weighted_values(samples: list[dict], metric: str) -> Values:
    """{(subtask, doc_id): (-loglikelihood, count)} of a weighted metric (per-item value a
    (loglikelihood, count) pair, as lm-eval logs loglikelihood_rolling's metrics)."""
    name, _, filt = metric.partition(",")
    out: Values = {}
    for row in samples:
        if row.get("filter", filt) != filt:
            continue
        key = (row.get("subtask"), row.get("doc_id"))
        v = row.get(name)
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[1] > 0):
            raise NotPerItemError(
                f"doc {key[1]!r}: per-item value of {name!r} is {v!r}, not a (loglikelihood, count) pair"
            )
        if key in out:
            raise ValueError(f"metric {metric!r}: doc {key[1]!r} (subtask {key[0]!r}) appears twice")
        out[key] = (-float(v[0]), float(v[1]))
    return out


def _num_den(v, name, key) -> tuple[float, float]:
    if isinstance(v, (bool, int, float)) and math.isfinite(float(v)):
        return float(v), 1.0
    if isinstance(v, list) and v and all(isinstance(x, (bool, int, float)) for x in v):
        return float(sum(v)), float(len(v))  # instance-level metric: lm-eval pools the list
    raise NotPerItemError(f"doc {key[1]!r}: per-item value of {name!r} is {v!r}, not a number")


def mean_of(values: Values) -> float | None:
    den = math.fsum(d for _, d in values.values())
    return math.fsum(n for n, _ in values.values()) / den if den else None


@dataclass(frozen=True)
class Component:
    """One per-item mean entering a statistic: the scheme's and bf16's item values."""

    stratum: tuple
    quantized: Values
    baseline: Values


@dataclass(frozen=True)
class Statistic:
    """A score computed from component means; `fn` maps {name: array of means} to an array.
    higher_is_better False: recovery is bf16 / scheme (a rise is a loss)."""

    components: dict  # {name: Component}
    fn: Callable
    higher_is_better: bool = True


def metric_statistic(
    task: str,
    quantized: Values,
    baseline: Values,
    metric: str,
    higher_is_better: bool = True,
    transform: Callable | None = None,
) -> Statistic:
    """A task's per-item mean of one metric (items of all subtasks pooled), or `transform` of
    it (a weighted perplexity: exp of the mean of -loglikelihood per word)."""
    name = (task, metric)
    fn = (lambda m: m[name]) if transform is None else (lambda m: transform(m[name]))
    return Statistic({name: Component((task,), quantized, baseline)}, fn, higher_is_better)


def suite_statistic(tasks: dict[str, Statistic]) -> Statistic:
    """The mean over tasks of each task's statistic (tasks are separate strata); every task
    must have the same direction (a mean of perplexity and accuracy means nothing)."""
    directions = {t.higher_is_better for t in tasks.values()}
    if len(directions) > 1:
        raise ValueError(f"suite mixes higher- and lower-is-better metrics ({', '.join(sorted(tasks))})")
    components = {}
    for t in tasks.values():
        components.update(t.components)
    fns = [t.fn for _, t in sorted(tasks.items())]
    return Statistic(components, lambda m: sum(f(m) for f in fns) / len(fns), directions.pop())


def _paired_arrays(components: dict) -> tuple[dict, dict, dict]:
    """Per stratum: the common item keys (sorted) and, per component, (num, den) arrays."""
    strata: dict[tuple, set] = {}
    for c in components.values():
        common = set(c.quantized) & set(c.baseline)
        strata[c.stratum] = strata[c.stratum] & common if c.stratum in strata else common
    dropped = {s: 0 for s in strata}
    for c in components.values():
        dropped[c.stratum] += len((set(c.quantized) | set(c.baseline)) - strata[c.stratum])
    keys = {s: sorted(k, key=lambda x: (str(x[0]), str(x[1]))) for s, k in strata.items()}
    arrays = {}
    for name, c in components.items():
        ks = keys[c.stratum]
        arrays[name] = tuple(
            np.array([side[k][i] for k in ks], dtype=float) for side in (c.quantized, c.baseline) for i in (0, 1)
        )
    return keys, arrays, dropped


def paired_bootstrap(stat: Statistic, *, n_resamples: int, confidence: float, seed: int) -> dict:
    """Percentile interval of recovery = stat(scheme) / stat(bf16) x 100 over paired resamples
    (stat(bf16) / stat(scheme) x 100 for a lower-is-better statistic).

    Returns recovery_ci_low/high (None where undefined: no common items, or bf16's score 0
    on the paired items), drop_significant / gain_significant (None where no interval),
    n_paired (common items over all strata), n_dropped (items only one side has, over
    components), and the settings. Deterministic given the seed: strata are drawn in
    sorted order, so the same items get the same indices whatever else is in the summary.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")
    keys, arrays, dropped = _paired_arrays(stat.components)
    out = {
        "recovery_ci_low": None,
        "recovery_ci_high": None,
        "drop_significant": None,
        "gain_significant": None,
        "n_paired": sum(len(k) for k in keys.values()),
        "n_dropped": sum(dropped.values()),
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
    }
    if any(len(k) == 0 for k in keys.values()):
        return out
    full = {name: tuple(np.array([a.sum()]) for a in arr) for name, arr in arrays.items()}
    # The denominator of recovery: bf16's score, or the scheme's for lower-is-better.
    denom = (2, 3) if stat.higher_is_better else (0, 1)
    base_point = float(stat.fn({n: a[denom[0]] / a[denom[1]] for n, a in full.items()})[0])
    if base_point == 0 or not math.isfinite(base_point):
        return out  # recovery undefined
    rng = np.random.default_rng(seed)
    sums = {name: [np.empty(n_resamples) for _ in range(4)] for name in arrays}
    for stratum in sorted(keys, key=str):
        n = len(keys[stratum])
        members = [name for name, c in stat.components.items() if c.stratum == stratum]
        block = max(1, _BLOCK_ENTRIES // n)
        for start in range(0, n_resamples, block):
            stop = min(start + block, n_resamples)
            idx = rng.integers(0, n, size=(stop - start, n))
            for name in members:
                for i, a in enumerate(arrays[name]):
                    sums[name][i][start:stop] = a[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = stat.fn({name: s[0] / s[1] for name, s in sums.items()})
        b = stat.fn({name: s[2] / s[3] for name, s in sums.items()})
        ratios = 100.0 * ((q / b) if stat.higher_is_better else (b / q))  # identical scores give exactly 100
    # A resample whose bf16 score is 0 has no recovery; it is left out (rare: it needs
    # bf16 to score 0 on the resample while scoring > 0 on the items themselves).
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return out
    tail = (1 - confidence) / 2 * 100
    low, high = (float(x) for x in np.percentile(ratios, [tail, 100 - tail]))
    out.update(recovery_ci_low=low, recovery_ci_high=high, drop_significant=high < 100.0, gain_significant=low > 100.0)
    return out


def samples_path_for(eval_json: str | Path) -> Path:
    """The per-item samples file beside an eval JSON (quantstudy/core/paths.py EVAL_SAMPLES)."""
    p = Path(eval_json)
    return p.with_name(p.name[: -len(".json")] + ".samples.jsonl") if p.name.endswith(".json") else p
