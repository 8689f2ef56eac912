"""Summary tables: scores, standard errors and recovery relative to bf16.

Recovery = quantized score / bf16 score x 100, per (model, task, metric), for a metric
where higher is better; for a lower-is-better one (perplexity) it is bf16 score / quantized
score x 100, so that a loss is always a recovery below 100. The direction is lm-eval's own
(`higher_is_better`, recorded per metric in the eval JSON from the task's metric config). A
suite's recovery is the ratio of the two suite averages (of each task's primary metric, the
first listed in config), not the mean of per-task ratios (as the paper does); a suite whose primary
metrics differ in direction has no suite row (its average would mean nothing).

With per-item samples, every recovery of a quantized scheme also gets a paired-bootstrap
confidence interval (quantstudy/summary/bootstrap.py) and the flags drop_significant (the whole
interval below 100) and gain_significant (above 100). Tasks configured with
`normalize: leaderboard-v2` get a first, primary metric `leaderboard_v2_normalized`
(quantstudy/summary/leaderboard.py), so their suite averages use the leaderboard's scores.

The rule's entry point, also run by hand:

    Collect per-task eval JSONs into results/summary.csv and results/summary.md.

        python -m quantstudy.summary.summary results/eval/*/*/*.json --csv /tmp/s.csv --md /tmp/s.md \\
            --samples results/eval/*/*/*.samples.jsonl \\
            --significance '{"seed": 0, "n_resamples": 1000, "confidence": 0.95}' \\
            --schemes '["bf16", "fp8", "int8", "int4"]'

    With --samples (each beside its eval JSON: X.samples.jsonl for X.json), every recovery of
    a quantized scheme gets a paired-bootstrap confidence interval (quantstudy/summary/bootstrap.py).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import defaultdict
from pathlib import Path

from quantstudy.core import atomic, cli, tables
from quantstudy.core.config import BASELINE
from quantstudy.core.results import read_result
from quantstudy.core.schemeorder import add_schemes_arg, scheme_key
from quantstudy.evaluate.lmeval import EvalFileError, metric_aggregation, metric_direction, read_eval_json
from quantstudy.similarity.textsim import SIMILARITY_FORMAT
from quantstudy.summary import bootstrap, leaderboard

SIGNIFICANCE_FIELDS = ["recovery_ci_low", "recovery_ci_high", "drop_significant", "gain_significant", "n_paired"]
FIELDS = [
    "model",
    "scheme",
    "level",
    "suite",
    "task",
    "metric",
    "score",
    "stderr",
    "n",
    "bf16_score",
    "bf16_stderr",
    "recovery_pct",
    "higher_is_better",
    "backend",  # lm-eval model that produced the score: vllm, or hf (evaluate --backend)
] + SIGNIFICANCE_FIELDS


def recovery_pct(score: float | None, base: float | None, higher_is_better: bool = True) -> float | None:
    """score / base x 100 (base / score x 100 where lower is better: a rise in perplexity is a
    recovery below 100); None where undefined (no baseline, or a zero denominator)."""
    if score is None or base is None:
        return None
    num, den = (score, base) if higher_is_better else (base, score)
    return None if den == 0 else num / den * 100.0


def mean_stderr(stderrs: list[float | None]) -> float | None:
    """Standard error of a mean of independent scores: sqrt(sum se^2) / k."""
    if not stderrs or any(s is None for s in stderrs):
        return None
    return math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)


def with_normalized(e: dict, method: str | None) -> dict:
    """The eval result with the normalized score as its first (primary) metric, if configured."""
    if not method:
        return e
    if method != leaderboard.LEADERBOARD_V2:
        raise ValueError(
            f"task {e['task']!r}: unknown normalization {method!r} (known: {leaderboard.LEADERBOARD_V2!r})"
        )
    lm_task = e.get("settings", {}).get("lm_eval_task", "")
    try:
        norm = leaderboard.normalized_score(lm_task, leaderboard.results_by_task(e))
    except leaderboard.NormalizationError as err:
        raise ValueError(f"eval {e['model']}/{e['scheme']}/{e['task']}: {err}") from None
    return {**e, "metrics": {leaderboard.NORMALIZED_METRIC: norm, **e["metrics"]}}


def build_rows(
    evals: list[dict],
    normalize: dict[str, str] | None = None,
    samples: dict[tuple, list[dict]] | None = None,
    significance: dict | None = None,
    *,
    order: list[str],
) -> list[dict]:
    """One row per (model, scheme, task, metric), then one per (model, scheme, suite).

    normalize: {task: "leaderboard-v2"}; samples: {(model, scheme, task): lm-eval per-item
    rows}; significance: bootstrap settings (seed, n_resamples, confidence), None = no
    intervals; order: the config's `schemes`, the order of the rows (quantstudy/core/schemeorder.py).
    Rows whose interval could not be computed say why in `ci_note` (not a column)."""
    evals = [with_normalized(e, (normalize or {}).get(e["task"])) for e in evals]
    by_key = {(e["model"], e["scheme"], e["task"]): e for e in evals}
    sig = Significance(by_key, samples or {}, significance) if significance is not None else None
    by_scheme = scheme_key(order)
    ordered = sorted(evals, key=lambda e: (e["model"], by_scheme(e["scheme"]), e["suite"], e["task"]))
    rows = []
    for e in ordered:
        base = by_key.get((e["model"], BASELINE, e["task"]))
        for metric, v in e["metrics"].items():
            b = (base or {}).get("metrics", {}).get(metric, {})
            row = {
                "model": e["model"],
                "scheme": e["scheme"],
                "level": "task",
                "suite": e["suite"],
                "task": e["task"],
                "metric": metric,
                "score": v["score"],
                "stderr": v.get("stderr"),
                "n": e.get("n_samples"),
                "bf16_score": b.get("score"),
                "bf16_stderr": b.get("stderr"),
                "recovery_pct": recovery_pct(v["score"], b.get("score"), metric_direction(e, metric)),
                "higher_is_better": metric_direction(e, metric),
                "backend": e.get("settings", {}).get("backend"),
            }
            if sig and e["scheme"] != BASELINE and base is not None:
                row.update(sig.interval({e["task"]: metric}, e["model"], e["scheme"]))
            rows.append(row)
    mixed: list[str] = []
    rows += suite_rows(ordered, by_key, sig, mixed)
    for note in mixed:
        warnings.warn(note, stacklevel=2)
    return rows


class Significance:
    """Paired-bootstrap intervals of recovery for task and suite rows (quantstudy/summary/bootstrap.py)."""

    def __init__(self, by_key: dict, samples: dict, settings: dict):
        self.by_key, self.samples = by_key, samples
        self.settings = settings  # complete: config `significance`, defaults filled from the schema
        self._values: dict = {}

    def _values_of(self, model, scheme, task, metric, subtask, expected) -> dict:
        """Per-item values of one side, checked against the score lm-eval reported: a metric
        whose aggregate is not the per-item mean (e.g. a corpus-level BLEU) has no interval."""
        key = (model, scheme, task, metric, subtask)
        if key not in self._values:
            rows = self.samples.get((model, scheme, task))
            if not rows:
                raise bootstrap.NotPerItemError(f"no per-item samples for {model}/{scheme}/{task}")
            vals = bootstrap.item_values(rows, metric, subtask)
            mean = bootstrap.mean_of(vals)
            if mean is None or not math.isclose(mean, expected, rel_tol=1e-6, abs_tol=1e-9):
                raise bootstrap.NotPerItemError(
                    f"{model}/{scheme}/{task} {metric}{f' ({subtask})' if subtask else ''}: per-item mean "
                    f"{mean} differs from the reported score {expected} (not a per-item mean)"
                )
            self._values[key] = vals
        return self._values[key]

    def _weighted_of(self, model, scheme, task, metric, expected, transform) -> dict:
        """(-loglikelihood, count) per item, checked: transform(weighted mean) = lm-eval's score."""
        rows = self.samples.get((model, scheme, task))
        if not rows:
            raise bootstrap.NotPerItemError(f"no per-item samples for {model}/{scheme}/{task}")
        vals = bootstrap.weighted_values(rows, metric)
        mean = bootstrap.mean_of(vals)
        got = None if mean is None else float(transform(mean))
        if got is None or not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
            raise bootstrap.NotPerItemError(
                f"{model}/{scheme}/{task} {metric}: weighted per-item value {got} "
                f"differs from the reported score {expected}"
            )
        return vals

    def task_statistic(self, model, scheme, task, metric) -> bootstrap.Statistic:
        e, b = self.by_key[(model, scheme, task)], self.by_key[(model, BASELINE, task)]
        if metric != leaderboard.NORMALIZED_METRIC:
            higher = metric_direction(e, metric)
            agg = metric_aggregation(e, metric) or bootstrap.ROLLING_DEFAULTS.get(metric.partition(",")[0])
            if agg in bootstrap.WEIGHTED_AGGREGATIONS:  # perplexity: exp(-sum ll / sum words), not a mean
                transform = bootstrap.WEIGHTED_AGGREGATIONS[agg]
                q, r = (
                    self._weighted_of(model, s, task, metric, x["metrics"][metric]["score"], transform)
                    for s, x in ((scheme, e), (BASELINE, b))
                )
                return bootstrap.metric_statistic(task, q, r, metric, higher, transform)
            q = self._values_of(model, scheme, task, metric, None, e["metrics"][metric]["score"])
            r = self._values_of(model, BASELINE, task, metric, None, b["metrics"][metric]["score"])
            return bootstrap.metric_statistic(task, q, r, metric, higher)
        # The normalized score from items: each part's mean, rescaled, averaged over parts.
        lm_task = e["settings"]["lm_eval_task"]
        comps, rescales = {}, []
        for source, m, base in leaderboard.parts(lm_task):
            subtask = None if source == lm_task else source
            expected = [leaderboard.results_by_task(x)[source][m] for x in (e, b)]
            name = (task, source, m)
            comps[name] = bootstrap.Component(
                (task, source),
                self._values_of(model, scheme, task, m, subtask, expected[0]),
                self._values_of(model, BASELINE, task, m, subtask, expected[1]),
            )
            rescales.append((name, base))
        return bootstrap.Statistic(
            comps, lambda means: sum(leaderboard.rescale(means[n], bl) for n, bl in rescales) / len(rescales)
        )

    def interval(self, metrics: dict[str, str], model, scheme) -> dict:
        """Interval of recovery of one task metric ({task: metric}) or of a suite (several)."""
        try:
            stats = {t: self.task_statistic(model, scheme, t, m) for t, m in metrics.items()}
            stat = next(iter(stats.values())) if len(stats) == 1 else bootstrap.suite_statistic(stats)
        except (bootstrap.NotPerItemError, KeyError, ValueError) as err:
            return {"ci_note": str(err)}
        res = bootstrap.paired_bootstrap(
            stat,
            n_resamples=self.settings["n_resamples"],
            confidence=self.settings["confidence"],
            seed=self.settings["seed"],
        )
        out = {k: res[k] for k in SIGNIFICANCE_FIELDS}
        notes = []
        if res["recovery_ci_low"] is None:
            notes.append(
                "no items both models answered"
                if res["n_paired"] == 0
                else "bf16 scores 0 on the paired items: recovery undefined"
            )
        if res["n_dropped"]:
            notes.append(f"{res['n_dropped']} item(s) answered by one model only were left out")
        if notes:
            out["ci_note"] = "; ".join(notes)
        return out


def suite_rows(
    evals: list[dict], by_key: dict, sig: Significance | None = None, mixed: list[str] | None = None
) -> list[dict]:
    """Suite rows; `mixed` collects a note for every suite skipped for mixing directions."""
    mixed = [] if mixed is None else mixed
    groups = defaultdict(list)
    for e in evals:
        groups[(e["model"], e["scheme"], e["suite"])].append(e)
    rows = []
    for (model, scheme, suite), members in groups.items():
        # Only tasks the baseline also has, so both averages cover the same tasks.
        pairs = [(e, by_key.get((model, BASELINE, e["task"]))) for e in sorted(members, key=lambda e: e["task"])]
        pairs = [(e, b) for e, b in pairs if b is not None]
        if not pairs:
            continue
        prim = [next(iter(e["metrics"].items())) for e, _ in pairs]
        directions = {metric_direction(e, m) for (e, _), (m, _) in zip(pairs, prim, strict=True)}
        if len(directions) > 1:
            # No average of a perplexity with an accuracy; the summary log names the suite.
            mixed.append(
                f"{model}/{scheme}: suite {suite!r} mixes higher- and lower-is-better primary metrics "
                f"({', '.join(e['task'] + ':' + m for (e, _), (m, _) in zip(pairs, prim, strict=True))}): no suite row; "
                "put them in separate suites"
            )
            continue
        higher = directions.pop()
        base = [b["metrics"][m] for (e, b), (m, _) in zip(pairs, prim, strict=True)]
        score = sum(v["score"] for _, v in prim) / len(prim)
        base_score = sum(v["score"] for v in base) / len(base)
        row = {
            "model": model,
            "scheme": scheme,
            "level": "suite",
            "suite": suite,
            "task": suite,
            "metric": "mean(" + ";".join(f"{e['task']}:{m}" for (e, _), (m, _) in zip(pairs, prim, strict=True)) + ")",
            "score": score,
            "stderr": mean_stderr([v.get("stderr") for _, v in prim]),
            "n": sum(e.get("n_samples") or 0 for e, _ in pairs),
            "bf16_score": base_score,
            "bf16_stderr": mean_stderr([v.get("stderr") for v in base]),
            "recovery_pct": recovery_pct(score, base_score, higher),
            "higher_is_better": higher,
            "backend": "+".join(sorted({b for e, _ in pairs if (b := e.get("settings", {}).get("backend"))})) or None,
        }
        if sig and scheme != BASELINE:
            row.update(sig.interval({e["task"]: m for (e, _), (m, _) in zip(pairs, prim, strict=True)}, model, scheme))
        rows.append(row)
    return rows


def _fmt(x, digits=4) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def to_csv(rows: list[dict]) -> str:
    return tables.to_csv(rows, FIELDS)  # the one CSV writer (quantstudy/core/tables.py)


def to_markdown(rows: list[dict], significance: dict | None = None, normalized_tasks=(), *, order: list[str]) -> str:
    """significance: the bootstrap settings used (None: rows have no intervals);
    normalized_tasks: tasks whose primary metric is the leaderboard-v2 normalized score;
    order: the config's `schemes`, the order of the columns."""
    out = [
        "# quantstudy summary",
        "",
        "Score ± standard error per scheme; recovery = score / bf16 score × 100 (bf16 score / score × 100 "
        "for a metric marked ↓, where lower is better, e.g. perplexity: a loss is always below 100%). "
        "Suite rows average each task's primary metric; their recovery is the ratio of the averages.",
        "",
    ]
    if significance is not None:
        st = significance
        out += [
            f"In brackets after each recovery: its {st['confidence'] * 100:g}% confidence interval from a "
            f"paired bootstrap over items ({st['n_resamples']} resamples, seed {st['seed']}): items both "
            "bf16 and the scheme answered (matched by lm-eval doc_id) are resampled with replacement, the "
            "same draw for both models, and the interval is the percentiles of the resampled recoveries. "
            "Suite intervals resample within each task (stratified). **▼** marks a significant drop (the "
            "whole interval below 100%), **▲** a significant gain (above 100%). No interval where a metric "
            "is not a mean of per-item values, or its samples are missing.",
            "",
        ]
    if normalized_tasks:
        out += [
            f"`{leaderboard.NORMALIZED_METRIC}`: the Open LLM Leaderboard v2 normalized score of "
            f"{', '.join(sorted(normalized_tasks))} (max(raw − chance, 0) / (1 − chance) per subtask, "
            "averaged; a fraction: ×100 is the leaderboard's number). It is these tasks' primary metric, "
            "so the suite average uses it; its interval bootstraps the same transform per subtask.",
            "",
        ]
    sim_rows = [r for r in rows if r["level"] == SIMILARITY_LEVEL]
    rows = [r for r in rows if r["level"] != SIMILARITY_LEVEL]
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model]
        schemes = sorted({r["scheme"] for r in mrows}, key=scheme_key(order))
        cells = {(r["level"], r["task"], r["metric"], r["scheme"]): r for r in mrows}
        lines = sorted({(r["level"] != "task", r["level"], r["task"], r["metric"]) for r in mrows})
        out += [
            f"## {model}",
            "",
            "| task | metric | " + " | ".join(schemes) + " |",
            "|---|---|" + "---|" * len(schemes),
        ]
        for _, level, task, metric in lines:
            row = []
            for s in schemes:
                r = cells.get((level, task, metric, s))
                if r is None:
                    row.append("—")
                    continue
                cell = _fmt(r["score"]) + (f" ± {_fmt(r['stderr'])}" if r["stderr"] is not None else "")
                if s != BASELINE and r["recovery_pct"] is not None:
                    cell += f" ({r['recovery_pct']:.1f}%{_interval_text(r)})"
                row.append(cell)
            label = f"**{task}** (suite)" if level == "suite" else task
            shown_metric = "mean of primary metrics" if level == "suite" else f"`{metric}`"
            if any(
                r.get("higher_is_better") is False
                for r in mrows
                if (r["level"], r["task"], r["metric"]) == (level, task, metric)
            ):
                shown_metric += " ↓"
            out.append(f"| {label} | {shown_metric} | " + " | ".join(row) + " |")
        out.append("")
    if sim_rows:
        out += similarity_markdown(sim_rows, order=order)
    return "\n".join(out)


def _interval_text(r: dict) -> str:
    if r.get("recovery_ci_low") is None:
        return ""
    mark = " **▼**" if r.get("drop_significant") else " **▲**" if r.get("gain_significant") else ""
    return f" [{r['recovery_ci_low']:.1f}, {r['recovery_ci_high']:.1f}]{mark}"


# ------------------------------------------------------------- similarity to bf16
# Rows of level "similarity", one per (model, quantized scheme, measure): `score` is the
# scheme-vs-bf16 value (0-1 similarities; KL in nats per token; flip rates as shares),
# `stderr` its standard error, `n` prompts / answer tokens / task items. bf16's own row
# would be 1 (0 for KL and flips) by construction, so it is left out, and the bf16_* and
# recovery_pct columns stay empty.

SIMILARITY_LEVEL = "similarity"
SIMILARITY_METRICS = ["rouge1", "rougeL", "bleu", "chrf", "sts", "bertscore_f1", "exact_match"]
SIMILARITY_LABELS = {
    "rouge1": "ROUGE-1 F",
    "rougeL": "ROUGE-L F",
    "bleu": "BLEU / 100",
    "chrf": "chrF / 100",
    "sts": "STS (embedding cosine)",
    "bertscore_f1": "BERTScore F1",
    "exact_match": "identical answers",
    "kl_per_token": "KL(bf16 ‖ scheme), nats/token",
    "top1_agreement": "same top-1 next token",
}


def read_similarity_json(path) -> dict:
    """Load a similarity JSON, checking it is complete; errors (ValueError) name the file."""
    return read_result(path, SIMILARITY_FORMAT, ("model", "scheme", "text", "kl", "flips"), "similarity")


def similarity_rows(sims: list[dict], evals: list[dict] | None = None, *, order: list[str]) -> list[dict]:
    """Summary rows from similarity JSONs (quantstudy/similarity/similarity.py), quantized schemes
    only, in scheme order (`order`: the config's `schemes`)."""
    suite_of = {e["task"]: e["suite"] for e in evals or []}
    rows = []

    def add(s, suite, task, metric, score, stderr, n):
        rows.append(
            {
                "model": s["model"],
                "scheme": s["scheme"],
                "level": SIMILARITY_LEVEL,
                "suite": suite,
                "task": task,
                "metric": metric,
                "score": score,
                "stderr": stderr,
                "n": n,
                "bf16_score": None,
                "bf16_stderr": None,
                "recovery_pct": None,
            }
        )

    by_scheme = scheme_key(order)
    for s in sorted(sims, key=lambda s: (s["model"], by_scheme(s["scheme"]))):
        if s["scheme"] == BASELINE:
            continue
        prompts = s.get("prompt_set") or "generations"
        for m in SIMILARITY_METRICS:
            v = s["text"][m]
            add(s, SIMILARITY_LEVEL, prompts, m, v["mean"], v["stderr"], v["n"])
        kl = s["kl"]
        add(s, SIMILARITY_LEVEL, prompts, "kl_per_token", kl["mean_per_token"], kl["stderr"], kl["n_tokens"])
        add(s, SIMILARITY_LEVEL, prompts, "top1_agreement", kl["top1_agreement"], None, kl["n_tokens"])
        for task, f in s.get("flips", {}).items():
            if "skipped" in f:
                continue
            suite = suite_of.get(task, "")
            add(s, suite, task, f"flip_rate({f['metric']})", f["flip_rate"], f["flip_rate_stderr"], f["n"])
            add(
                s,
                suite,
                task,
                f"correct_to_wrong_rate({f['metric']})",
                f["correct_to_wrong_rate"],
                f.get("correct_to_wrong_rate_stderr"),
                f["n"],
            )
            add(
                s,
                suite,
                task,
                f"wrong_to_correct_rate({f['metric']})",
                f["wrong_to_correct_rate"],
                f.get("wrong_to_correct_rate_stderr"),
                f["n"],
            )
        pooled = s.get("flips_all_tasks")
        if pooled:
            add(
                s,
                SIMILARITY_LEVEL,
                "all_tasks",
                "flip_rate",
                pooled["flip_rate"],
                pooled["flip_rate_stderr"],
                pooled["n"],
            )
    return rows


def similarity_markdown(rows: list[dict], *, order: list[str]) -> list[str]:
    """The drift tables, one per model, columns in scheme order (`order`: the config's `schemes`)."""
    out = []
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model]
        schemes = sorted({r["scheme"] for r in mrows}, key=scheme_key(order))
        cells = {(r["task"], r["metric"], r["scheme"]): r for r in mrows}
        lines = list(dict.fromkeys((r["task"], r["metric"]) for r in mrows))
        out += [
            f"## {model}: drift from bf16",
            "",
            "Each scheme's greedy answers compared with bf16's to the same prompts (mean ± standard error "
            "over prompts; 1 = identical to bf16), the mean per-token KL divergence of its next-token "
            "distribution from bf16's (teacher-forced on bf16's answers; 0 = identical), and the share "
            "of task items whose correctness flips relative to bf16 (correct→wrong / wrong→correct). "
            "bf16 against itself is 1 (0 for KL and flips) by construction.",
            "",
            "| on | measure | " + " | ".join(schemes) + " |",
            "|---|---|" + "---|" * len(schemes),
        ]
        for task, metric in lines:
            row = []
            for s in schemes:
                r = cells.get((task, metric, s))
                if r is None or r["score"] is None:
                    row.append("—")
                    continue
                fmt = (lambda x: f"{x:.3g}") if metric == "kl_per_token" else _fmt  # KL is often ~1e-5
                row.append(fmt(r["score"]) + (f" ± {fmt(r['stderr'])}" if r["stderr"] is not None else ""))
            label = SIMILARITY_LABELS.get(metric, f"`{metric}`")
            out.append(f"| {task} | {label} | " + " | ".join(row) + " |")
        out.append("")
    return out


log = logging.getLogger("summarize")


def read_samples_beside(eval_paths: list[str], evals: list[dict], samples_paths: list[str]) -> dict:
    """{(model, scheme, task): per-item rows}, each samples file matched to its eval JSON by
    name; a samples file with no eval JSON beside it is an error (naming it)."""
    by_path = {bootstrap.samples_path_for(p).resolve(): e for p, e in zip(eval_paths, evals, strict=True)}
    out = {}
    for sp in samples_paths:
        e = by_path.get(Path(sp).resolve())
        if e is None:
            raise ValueError(
                f"{sp}: no eval JSON beside it among the inputs (expected {sp[: -len('.samples.jsonl')]}.json)"
            )
        out[(e["model"], e["scheme"], e["task"])] = bootstrap.read_samples(sp)
    return out


def main(argv=None) -> int:
    ap = cli.parser(__doc__)
    ap.add_argument("evals", nargs="+", help="eval JSON files written by quantstudy/evaluate/evaluate.py")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--skipped", default="{}", help="JSON {task: reason} of tasks declared but not run")
    ap.add_argument(
        "--similarity",
        nargs="*",
        default=[],
        help="similarity JSON files written by quantstudy/similarity/similarity.py (optional)",
    )
    ap.add_argument(
        "--samples",
        nargs="*",
        default=[],
        help="per-item samples JSONL beside eval JSONs (X.samples.jsonl for X.json): recovery intervals",
    )
    ap.add_argument(
        "--significance",
        type=cli.json_arg,
        required=True,
        help='JSON bootstrap settings (config `significance`), e.g. {"seed": 0, "n_resamples": 1000, "confidence": 0.95}',
    )
    ap.add_argument(
        "--normalize",
        default="{}",
        help='JSON {task: "leaderboard-v2"} of tasks scored with the leaderboard normalization',
    )
    add_schemes_arg(ap)
    args = ap.parse_args(argv)
    logging.captureWarnings(True)  # a suite skipped for mixing metric directions is named in the log
    try:
        evals = [read_eval_json(p) for p in args.evals]
    except EvalFileError as e:  # a corrupt or truncated file is never summarized as a score
        raise cli.StepError(e) from e
    try:
        sims = [read_similarity_json(p) for p in args.similarity]
    except ValueError as e:
        raise cli.StepError(e) from e
    try:
        samples = read_samples_beside(args.evals, evals, args.samples)
    except ValueError as e:
        raise cli.StepError(e) from e
    significance = args.significance if args.samples else None
    normalize = json.loads(args.normalize)
    started = time.perf_counter()
    try:
        rows = build_rows(evals, normalize, samples, significance, order=args.schemes)
        rows += similarity_rows(sims, evals, order=args.schemes)
    except ValueError as e:  # e.g. a normalization the results cannot support
        raise cli.StepError(e) from e
    log.info("rows and intervals in %.2f s", time.perf_counter() - started)
    for r in rows:  # why a quantized row has no interval, or what it left out
        if r.get("ci_note"):
            log.warning("%s/%s/%s %s: %s", r["model"], r["scheme"], r["task"], r["metric"], r["ci_note"])
    md = to_markdown(rows, significance, sorted(normalize), order=args.schemes)
    skipped = json.loads(args.skipped)
    if skipped:  # declared, not silently dropped
        md += "\n## Tasks not run\n\n| task | reason |\n|---|---|\n"
        md += "".join(f"| {t} | {why} |\n" for t, why in sorted(skipped.items()))
    atomic.write_text(args.md, md)
    atomic.write_text(args.csv, to_csv(rows))
    log.info("%d rows from %d eval files and %d similarity files", len(rows), len(evals), len(sims))
    return 0


if __name__ == "__main__":
    cli.main(main)
