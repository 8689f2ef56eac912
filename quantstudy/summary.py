"""Summary tables: scores, standard errors and recovery relative to bf16.

Recovery = quantized score / bf16 score x 100, per (model, task, metric). A suite's
recovery is the ratio of the two suite averages (of each task's primary metric, the
first listed in config), not the mean of per-task ratios (STUDY.md).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

from quantstudy.config import BASELINE
from quantstudy.results import read_result
from quantstudy.textsim import SIMILARITY_FORMAT

SCHEME_ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]
FIELDS = ["model", "scheme", "level", "suite", "task", "metric", "score", "stderr", "n",
          "bf16_score", "bf16_stderr", "recovery_pct"]


def recovery_pct(score: float | None, base: float | None) -> float | None:
    """score / base x 100; None where undefined (no baseline, or a baseline of 0)."""
    if score is None or base is None or base == 0:
        return None
    return score / base * 100.0


def mean_stderr(stderrs: list[float | None]) -> float | None:
    """Standard error of a mean of independent scores: sqrt(sum se^2) / k."""
    if not stderrs or any(s is None for s in stderrs):
        return None
    return math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)


def scheme_key(s: str):
    """Sort key: the paper's scheme order, then any other scheme by name."""
    return (SCHEME_ORDER.index(s) if s in SCHEME_ORDER else len(SCHEME_ORDER), s)


def build_rows(evals: list[dict]) -> list[dict]:
    """One row per (model, scheme, task, metric), then one per (model, scheme, suite)."""
    by_key = {(e["model"], e["scheme"], e["task"]): e for e in evals}
    ordered = sorted(evals, key=lambda e: (e["model"], scheme_key(e["scheme"]), e["suite"], e["task"]))
    rows = []
    for e in ordered:
        base = by_key.get((e["model"], BASELINE, e["task"]))
        for metric, v in e["metrics"].items():
            b = (base or {}).get("metrics", {}).get(metric, {})
            rows.append({
                "model": e["model"], "scheme": e["scheme"], "level": "task", "suite": e["suite"],
                "task": e["task"], "metric": metric, "score": v["score"], "stderr": v.get("stderr"),
                "n": e.get("n_samples"), "bf16_score": b.get("score"), "bf16_stderr": b.get("stderr"),
                "recovery_pct": recovery_pct(v["score"], b.get("score")),
            })
    rows += suite_rows(ordered, by_key)
    return rows


def suite_rows(evals: list[dict], by_key: dict) -> list[dict]:
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
        base = [b["metrics"][m] for (e, b), (m, _) in zip(pairs, prim)]
        score = sum(v["score"] for _, v in prim) / len(prim)
        base_score = sum(v["score"] for v in base) / len(base)
        rows.append({
            "model": model, "scheme": scheme, "level": "suite", "suite": suite,
            "task": suite, "metric": "mean(" + ";".join(f"{e['task']}:{m}" for (e, _), (m, _) in zip(pairs, prim)) + ")",
            "score": score, "stderr": mean_stderr([v.get("stderr") for _, v in prim]),
            "n": sum(e.get("n_samples") or 0 for e, _ in pairs),
            "bf16_score": base_score, "bf16_stderr": mean_stderr([v.get("stderr") for v in base]),
            "recovery_pct": recovery_pct(score, base_score),
        })
    return rows


def _fmt(x, digits=4) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k), 6) for k in FIELDS})
    return buf.getvalue()


def to_markdown(rows: list[dict]) -> str:
    out = ["# quantstudy summary", "",
           "Score ± standard error per scheme; recovery = score / bf16 score × 100. "
           "Suite rows average each task's primary metric; their recovery is the ratio of the averages.", ""]
    sim_rows = [r for r in rows if r["level"] == SIMILARITY_LEVEL]
    rows = [r for r in rows if r["level"] != SIMILARITY_LEVEL]
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model]
        schemes = sorted({r["scheme"] for r in mrows}, key=scheme_key)
        cells = {(r["level"], r["task"], r["metric"], r["scheme"]): r for r in mrows}
        lines = sorted({(r["level"] != "task", r["level"], r["task"], r["metric"]) for r in mrows})
        out += [f"## {model}", "", "| task | metric | " + " | ".join(schemes) + " |",
                "|---|---|" + "---|" * len(schemes)]
        for _, level, task, metric in lines:
            row = []
            for s in schemes:
                r = cells.get((level, task, metric, s))
                if r is None:
                    row.append("—")
                    continue
                cell = _fmt(r["score"]) + (f" ± {_fmt(r['stderr'])}" if r["stderr"] is not None else "")
                if s != BASELINE and r["recovery_pct"] is not None:
                    cell += f" ({r['recovery_pct']:.1f}%)"
                row.append(cell)
            label = f"**{task}** (suite)" if level == "suite" else task
            shown_metric = "mean of primary metrics" if level == "suite" else f"`{metric}`"
            out.append(f"| {label} | {shown_metric} | " + " | ".join(row) + " |")
        out.append("")
    if sim_rows:
        out += similarity_markdown(sim_rows)
    return "\n".join(out)


# ------------------------------------------------------------- similarity to bf16
# Rows of level "similarity", one per (model, quantized scheme, measure): `score` is the
# scheme-vs-bf16 value (0-1 similarities; KL in nats per token; flip rates as shares),
# `stderr` its standard error, `n` prompts / answer tokens / task items. bf16's own row
# would be 1 (0 for KL and flips) by construction, so it is left out, and the bf16_* and
# recovery_pct columns stay empty.

SIMILARITY_LEVEL = "similarity"
SIMILARITY_METRICS = ["rouge1", "rougeL", "bleu", "chrf", "sts", "bertscore_f1", "exact_match"]
SIMILARITY_LABELS = {
    "rouge1": "ROUGE-1 F", "rougeL": "ROUGE-L F", "bleu": "BLEU / 100", "chrf": "chrF / 100",
    "sts": "STS (embedding cosine)", "bertscore_f1": "BERTScore F1", "exact_match": "identical answers",
    "kl_per_token": "KL(bf16 ‖ scheme), nats/token", "top1_agreement": "same top-1 next token",
}


def read_similarity_json(path) -> dict:
    """Load a similarity JSON, checking it is complete; errors (ValueError) name the file."""
    return read_result(path, SIMILARITY_FORMAT, ("model", "scheme", "text", "kl", "flips"), "similarity")


def similarity_rows(sims: list[dict], evals: list[dict] | None = None) -> list[dict]:
    """Summary rows from similarity JSONs (scripts/similarity.py), quantized schemes only."""
    suite_of = {e["task"]: e["suite"] for e in evals or []}
    rows = []

    def add(s, suite, task, metric, score, stderr, n):
        rows.append({"model": s["model"], "scheme": s["scheme"], "level": SIMILARITY_LEVEL, "suite": suite,
                     "task": task, "metric": metric, "score": score, "stderr": stderr, "n": n,
                     "bf16_score": None, "bf16_stderr": None, "recovery_pct": None})

    for s in sorted(sims, key=lambda s: (s["model"], scheme_key(s["scheme"]))):
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
            add(s, suite, task, f"correct_to_wrong_rate({f['metric']})", f["correct_to_wrong_rate"],
                f.get("correct_to_wrong_rate_stderr"), f["n"])
            add(s, suite, task, f"wrong_to_correct_rate({f['metric']})", f["wrong_to_correct_rate"],
                f.get("wrong_to_correct_rate_stderr"), f["n"])
        pooled = s.get("flips_all_tasks")
        if pooled:
            add(s, SIMILARITY_LEVEL, "all_tasks", "flip_rate", pooled["flip_rate"], pooled["flip_rate_stderr"],
                pooled["n"])
    return rows


def similarity_markdown(rows: list[dict]) -> list[str]:
    out = []
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model]
        schemes = sorted({r["scheme"] for r in mrows}, key=scheme_key)
        cells = {(r["task"], r["metric"], r["scheme"]): r for r in mrows}
        lines = list(dict.fromkeys((r["task"], r["metric"]) for r in mrows))
        out += [f"## {model}: drift from bf16", "",
                "Each scheme's greedy answers compared with bf16's to the same prompts (mean ± standard error "
                "over prompts; 1 = identical to bf16), the mean per-token KL divergence of its next-token "
                "distribution from bf16's (teacher-forced on bf16's answers; 0 = identical), and the share "
                "of task items whose correctness flips relative to bf16 (correct→wrong / wrong→correct). "
                "bf16 against itself is 1 (0 for KL and flips) by construction.", "",
                "| on | measure | " + " | ".join(schemes) + " |", "|---|---|" + "---|" * len(schemes)]
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
