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


def _scheme_key(s: str):
    return (SCHEME_ORDER.index(s) if s in SCHEME_ORDER else len(SCHEME_ORDER), s)


def build_rows(evals: list[dict]) -> list[dict]:
    """One row per (model, scheme, task, metric), then one per (model, scheme, suite)."""
    by_key = {(e["model"], e["scheme"], e["task"]): e for e in evals}
    ordered = sorted(evals, key=lambda e: (e["model"], _scheme_key(e["scheme"]), e["suite"], e["task"]))
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
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model]
        schemes = sorted({r["scheme"] for r in mrows}, key=_scheme_key)
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
    return "\n".join(out)
