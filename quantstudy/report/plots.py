"""Figures of the report: recovery per task and scheme, similarity of answers to bf16,
accuracy against throughput and against cost.

Plain functions over rows read from the workflow's CSVs (dicts of strings, as csv gives
them), so they can be tested on hand-made frames. matplotlib is imported only by the
drawing functions (Agg backend); the data helpers, the Pareto front included, are
stdlib-only. Output is deterministic: no date in SVG metadata, a fixed SVG hash salt.

Definitions used in every caption:
- recovery (%) = quantized score / bf16 score x 100, bf16 / quantized for a lower-is-better
  metric such as perplexity, marked ↓ (summary.csv `recovery_pct`); bars are
  the primary metric of each task and the suite rows; the interval is the paired-bootstrap
  95% interval (`recovery_ci_low`/`recovery_ci_high`) when summary.csv carries it.
- accuracy of a scheme, in the trade-off figures = the mean over suites of its suite
  recovery (bf16 = 100).
- throughput / queries per dollar of a scheme = the geometric mean over the use cases
  measured for every scheme of that (model, gpu, mode), so each use case weighs the same
  whatever its request length.

Schemes are ordered and coloured by the config's `schemes` list (`order`, passed down from
figures.py's --schemes) through quantstudy/core/schemeorder.py: bf16 grey, every other scheme its
own palette colour by position, the same in every figure drawn from the same order.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from quantstudy.core.config import BASELINE
from quantstudy.core.schemeorder import scheme_colors, scheme_key
from quantstudy.core.tables import read_csv

MODE_ORDER = ["sync", "async", "slo"]
CI_LOW, CI_HIGH, SIGNIFICANT = "recovery_ci_low", "recovery_ci_high", "drop_significant"


# ----------------------------------------------------------------------------- data


def num(x) -> float | None:
    """A CSV cell as a float; None for a missing, empty or non-finite value."""
    if x is None:
        return None
    if isinstance(x, (int, float)):
        v = float(x)
    else:
        x = str(x).strip()
        if not x:
            return None
        try:
            v = float(x)
        except ValueError:
            return None
    return v if math.isfinite(v) else None


def truthy(x) -> bool:
    return str(x).strip().lower() in ("1", "true", "yes")


def mode_key(m: str):
    return (MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER), m)


def pareto_front(points: list[tuple[float | None, float | None]]) -> list[bool]:
    """Which points are Pareto-optimal when both coordinates are maximized.

    A point is dominated when another is at least as good in both coordinates and
    strictly better in one. Identical points do not dominate each other (both stay on
    the front); a single point is the front; a point with a missing coordinate is never
    on it and dominates nothing.
    """
    ok = [p[0] is not None and p[1] is not None for p in points]
    front = []
    for i, (x, y) in enumerate(points):
        if not ok[i]:
            front.append(False)
            continue
        dominated = any(
            ok[j] and j != i and points[j][0] >= x and points[j][1] >= y and (points[j][0] > x or points[j][1] > y)
            for j in range(len(points))
        )
        front.append(not dominated)
    return front


def primary_metrics(summary: list[dict]) -> dict[tuple[str, str], str]:
    """(model, task) -> its primary metric: the one the suite row averages
    ("mean(task:metric;...)"), else the task's first metric row."""
    out = {}
    for r in summary:
        if r.get("level") == "suite" and r.get("metric", "").startswith("mean(") and r["metric"].endswith(")"):
            for part in r["metric"][5:-1].split(";"):
                task, _, metric = part.partition(":")
                if metric:
                    out.setdefault((r["model"], task), metric)
    for r in summary:
        if r.get("level") == "task":
            out.setdefault((r["model"], r["task"]), r["metric"])
    return out


def has_intervals(summary: list[dict]) -> bool:
    """Whether summary.csv carries recovery intervals (columns present, some filled)."""
    return any(num(r.get(CI_LOW)) is not None and num(r.get(CI_HIGH)) is not None for r in summary)


def recovery_bars_data(summary: list[dict], order: list[str]) -> dict[str, dict]:
    """Per model: groups (tasks, then suites) x quantized schemes (in `order`) -> recovery,
    interval, flag."""
    prim = primary_metrics(summary)
    out = {}
    for model in sorted({r["model"] for r in summary if r.get("level") in ("task", "suite")}):
        rows = [
            r
            for r in summary
            if r["model"] == model
            and (
                (r.get("level") == "task" and prim.get((model, r["task"])) == r["metric"]) or r.get("level") == "suite"
            )
        ]
        groups = list(
            dict.fromkeys(
                [(r["level"], r["task"]) for r in rows if r["level"] == "task"]
                + [(r["level"], r["task"]) for r in rows if r["level"] == "suite"]
            )
        )
        schemes = sorted({r["scheme"] for r in rows if r["scheme"] != BASELINE}, key=scheme_key(order))
        cells = {}
        for r in rows:
            rec = num(r.get("recovery_pct"))
            if r["scheme"] == BASELINE or rec is None:
                continue
            lo, hi = num(r.get(CI_LOW)), num(r.get(CI_HIGH))
            cells[(r["level"], r["task"], r["scheme"])] = {
                "recovery": rec,
                "low": lo if hi is not None else None,
                "high": hi if lo is not None else None,
                "significant": truthy(r.get(SIGNIFICANT, "")),
            }
        # Lower-is-better metrics (perplexity) are drawn as bf16 / score like summary.csv's
        # recovery_pct, so every bar below 100 is a loss; the label says so.
        lower = {(r["level"], r["task"]) for r in rows if str(r.get("higher_is_better", "")).lower() == "false"}
        out[model] = {
            "groups": groups,
            "schemes": schemes,
            "cells": cells,
            "metrics": {
                (lvl, t): (prim.get((model, t)) if lvl == "task" else "suite mean")
                + (" ↓ (bf16/score)" if (lvl, t) in lower else "")
                for lvl, t in groups
            },
        }
    return out


def scheme_accuracy(summary: list[dict]) -> dict[tuple[str, str], float]:
    """(model, scheme) -> mean over suites of the suite recovery (%); bf16 is 100."""
    acc = defaultdict(list)
    for r in summary:
        rec = num(r.get("recovery_pct"))
        if r.get("level") == "suite" and rec is not None:
            acc[(r["model"], r["scheme"])].append(rec)
    return {k: sum(v) / len(v) for k, v in acc.items()}


def geomean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and v > 0]
    if not vals or len(vals) != len(values):
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def hardware_by_gpu(perf: list[dict]) -> dict[str, str]:
    """gpu -> the hardware description(s) perf.csv records for it."""
    seen = defaultdict(list)
    for r in perf:
        hw = (r.get("hardware") or "").strip()
        if hw and hw not in seen[r.get("gpu", "")]:
            seen[r.get("gpu", "")].append(hw)
    return {gpu: " / ".join(hws) for gpu, hws in seen.items()}


def perf_hardware(perf_csv) -> str:
    """Every hardware description in perf.csv's `hardware` column ("not recorded" if none)."""
    try:
        rows = read_csv(perf_csv)
    except FileNotFoundError:
        rows = []
    return "; ".join(sorted({(r.get("hardware") or "").strip() for r in rows} - {""})) or "not recorded"


def report_labels(figure: str):
    """Snakemake report labels of a figure, evaluated when the report is built: its name and
    the hardware its performance rows were measured on (the rule's `perf` input)."""

    def labels(wildcards, input):
        perf = [input.perf] if isinstance(input.perf, str) else list(input.perf)  # [] without perf
        return {"figure": figure, "hardware": perf_hardware(perf[0]) if perf else "no performance data"}

    return labels


def tradeoff_panels(summary: list[dict], rows: list[dict], field: str, order: list[str]) -> list[dict]:
    """One panel per (model, gpu, mode) of perf.csv or cost.csv rows: per scheme (in `order`),
    x = the geometric mean of `field` over the use cases every scheme of the panel has, y = its
    accuracy (scheme_accuracy), and whether it is on the Pareto front."""
    acc = scheme_accuracy(summary)
    by_panel = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        v = num(r.get(field))
        if v is None:
            continue
        by_panel[(r["model"], r.get("gpu", ""), r.get("mode", ""))][r["scheme"]][r.get("use_case", "")] = v
    panels = []
    for model, gpu, mode in sorted(by_panel, key=lambda k: (k[0], k[1], mode_key(k[2]))):
        per_scheme = by_panel[(model, gpu, mode)]
        common = sorted(set.intersection(*(set(u) for u in per_scheme.values())))
        schemes = sorted(per_scheme, key=scheme_key(order))
        pts = []
        for s in schemes:
            x = geomean([per_scheme[s][u] for u in common]) if common else None
            pts.append((x, acc.get((model, s))))
        front = pareto_front(pts)
        panels.append(
            {
                "model": model,
                "gpu": gpu,
                "mode": mode,
                "use_cases": common,
                "points": [
                    {"scheme": s, "x": x, "y": y, "front": f} for s, (x, y), f in zip(schemes, pts, front, strict=True)
                ],
            }
        )
    return panels


# ----------------------------------------------------------------------------- drawing


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"svg.hashsalt": "quantstudy", "font.size": 9, "axes.titlesize": 9, "figure.dpi": 100, "savefig.dpi": 150}
    )
    return plt


def _save(fig, out) -> None:
    """Deterministic bytes: no creation date (SVG/PDF), no software stamp (PNG)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    meta = {"Date": None} if suffix in (".svg", ".pdf") else {"Software": None} if suffix == ".png" else None
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    fig.savefig(tmp, metadata=meta, bbox_inches="tight")
    tmp.replace(out)


def _empty(plt, out, message: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    _save(fig, out)
    plt.close(fig)


def plot_recovery(summary: list[dict], out, order: list[str]) -> dict:
    """Bars of recovery (%) per task/suite x quantized scheme, one panel per model, with the
    95% interval as error bars when summary.csv has it. Returns what was drawn."""
    plt = _plt()
    data = recovery_bars_data(summary, order)
    intervals = has_intervals(summary)
    data = {m: d for m, d in data.items() if d["groups"] and d["schemes"]}
    if not data:
        _empty(plt, out, "No recovery to draw: summary.csv has no quantized scheme with a bf16 baseline.")
        return {"models": [], "intervals": intervals}
    colors = scheme_colors(order, (s for d in data.values() for s in d["schemes"]))
    width_groups = max(len(d["groups"]) for d in data.values())
    fig, axes = plt.subplots(len(data), 1, figsize=(max(6.0, 1.3 * width_groups + 2.5), 3.4 * len(data)), squeeze=False)
    for ax, (model, d) in zip(axes[:, 0], data.items(), strict=True):
        k = len(d["schemes"])
        w = 0.8 / k
        for i, s in enumerate(d["schemes"]):
            xs, ys, lo, hi, stars = [], [], [], [], []
            for g, (lvl, task) in enumerate(d["groups"]):
                c = d["cells"].get((lvl, task, s))
                if c is None:
                    continue
                xs.append(g - 0.4 + w * (i + 0.5))
                ys.append(c["recovery"])
                has = c["low"] is not None
                lo.append(max(0.0, c["recovery"] - c["low"]) if has else 0.0)
                hi.append(max(0.0, c["high"] - c["recovery"]) if has else 0.0)
                stars.append((xs[-1], c["high"] if has else c["recovery"]) if c["significant"] else None)
            yerr = [lo, hi] if intervals else None
            ax.bar(
                xs,
                ys,
                width=w,
                label=s,
                color=colors[s],
                yerr=yerr,
                capsize=3 if intervals else 0,
                error_kw={"elinewidth": 1, "ecolor": "black"},
            )
            for st in filter(None, stars):
                ax.annotate("*", st, ha="center", va="bottom", fontsize=11)
        ax.axhline(100.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(d["groups"])))
        ax.set_xticklabels(
            [(f"{t}\n({d['metrics'][(lvl, t)]})" if lvl == "task" else f"{t}\n(suite)") for lvl, t in d["groups"]],
            fontsize=8,
        )
        ax.set_ylabel("recovery vs bf16 (%)")
        vals = [c["recovery"] for c in d["cells"].values()] + [
            c[b] for c in d["cells"].values() for b in ("low", "high") if c[b] is not None
        ]
        lo_lim, hi_lim = min(vals + [100.0]), max(vals + [100.0])
        pad = max(1.0, 0.1 * (hi_lim - lo_lim))
        ax.set_ylim(max(0.0, lo_lim - pad), hi_lim + pad)
        note = "error bars: paired-bootstrap 95% interval" if intervals else "no interval: summary.csv has none"
        ax.set_title(f"{model}: accuracy recovery per task and suite ({note})")
        ax.legend(title="scheme", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    return {"models": list(data), "intervals": intervals}


SIMILARITY_SHOWN = ["rouge1", "rougeL", "chrf", "sts", "bertscore_f1", "exact_match", "top1_agreement"]


def similarity_bars_data(summary: list[dict], order: list[str]) -> dict[str, dict]:
    """Per model: the 0-1 similarity measures to bf16 (1 = identical) x quantized scheme (in
    `order`), with their standard errors, from the summary's similarity rows."""
    from quantstudy.summary.summary import SIMILARITY_LABELS

    out = {}
    rows = [r for r in summary if r.get("level") == "similarity" and r.get("metric") in SIMILARITY_SHOWN]
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model and num(r.get("score")) is not None]
        metrics = [m for m in SIMILARITY_SHOWN if any(r["metric"] == m for r in mrows)]
        out[model] = {
            "metrics": metrics,
            "labels": [SIMILARITY_LABELS.get(m, m) for m in metrics],
            "schemes": sorted({r["scheme"] for r in mrows}, key=scheme_key(order)),
            "cells": {(r["metric"], r["scheme"]): (num(r["score"]), num(r.get("stderr"))) for r in mrows},
        }
    return out


def plot_similarity(summary: list[dict], out, order: list[str]) -> dict:
    """Bars of each quantized scheme's similarity to bf16 (ROUGE, chrF, STS, BERTScore,
    identical answers, same top-1 token), mean +- standard error, one panel per model."""
    plt = _plt()
    data = {m: d for m, d in similarity_bars_data(summary, order).items() if d["metrics"] and d["schemes"]}
    if not data:
        _empty(plt, out, "No similarity to bf16 to draw: the config has no similarity stage.")
        return {"models": []}
    colors = scheme_colors(order, (s for d in data.values() for s in d["schemes"]))
    fig, axes = plt.subplots(
        len(data),
        1,
        figsize=(max(6.0, 1.5 * max(len(d["metrics"]) for d in data.values()) + 2.5), 3.2 * len(data)),
        squeeze=False,
    )
    for ax, (model, d) in zip(axes[:, 0], data.items(), strict=True):
        w = 0.8 / len(d["schemes"])
        lowest = 1.0
        for i, s in enumerate(d["schemes"]):
            xs, ys, es = [], [], []
            for g, m in enumerate(d["metrics"]):
                if (m, s) in d["cells"]:
                    score, se = d["cells"][(m, s)]
                    xs.append(g - 0.4 + w * (i + 0.5))
                    ys.append(score)
                    es.append(se or 0.0)
                    lowest = min(lowest, score - (se or 0.0))
            ax.bar(
                xs,
                ys,
                width=w,
                yerr=es,
                capsize=3,
                label=s,
                color=colors[s],
                error_kw={"elinewidth": 1, "ecolor": "black"},
            )
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(d["metrics"])))
        ax.set_xticklabels([lbl.replace(" (", "\n(") for lbl in d["labels"]], fontsize=8)
        ax.set_ylim(max(0.0, lowest - 0.1 * (1.0 - lowest) - 0.01), 1.005 + 0.02 * (1.0 - lowest))
        ax.set_ylabel("similarity to bf16 (1 = identical)")
        ax.set_title(f"{model}: answers of each scheme vs bf16's (mean ± standard error over prompts)")
        ax.legend(title="scheme", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    return {"models": list(data)}


def plot_tradeoff(
    panels: list[dict], out, xlabel: str, hardware: dict[str, str] | None = None, what: str = "", *, order: list[str]
) -> dict:
    """Scatter of accuracy (y) against a performance measure (x), one point per scheme,
    one panel per (model, gpu, mode); the Pareto front joined and its points filled."""
    plt = _plt()
    hardware = hardware or {}
    panels = [p for p in panels if any(pt["x"] is not None and pt["y"] is not None for pt in p["points"])]
    if not panels:
        _empty(plt, out, f"No {what or xlabel} to draw: no performance rows with accuracy for the same scheme.")
        return {"panels": 0}
    colors = scheme_colors(order, (pt["scheme"] for p in panels for pt in p["points"]))
    rows = sorted({(p["model"], p["gpu"]) for p in panels})
    modes = sorted({p["mode"] for p in panels}, key=mode_key)
    fig, axes = plt.subplots(len(rows), len(modes), figsize=(5.2 * len(modes), 3.9 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for p in panels:
        ax = axes[rows.index((p["model"], p["gpu"])), modes.index(p["mode"])]
        ax.axis("on")
        pts = [pt for pt in p["points"] if pt["x"] is not None and pt["y"] is not None]
        for pt in pts:
            color = colors[pt["scheme"]]
            ax.scatter(
                [pt["x"]],
                [pt["y"]],
                s=60,
                zorder=3,
                edgecolors=color,
                linewidths=1.5,
                facecolors=color if pt["front"] else "white",
                label=pt["scheme"] + (" (Pareto)" if pt["front"] else ""),
            )
            ax.annotate(pt["scheme"], (pt["x"], pt["y"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        front = sorted((pt["x"], pt["y"]) for pt in pts if pt["front"])
        if len(front) > 1:
            ax.plot(
                [f[0] for f in front],
                [f[1] for f in front],
                color="black",
                lw=1,
                ls=":",
                zorder=2,
                label="Pareto front",
            )
        ys = [pt["y"] for pt in pts]
        span = max(ys + [100.0]) - min(ys + [100.0])
        pad = max(0.5, 0.15 * span)
        ax.set_ylim(min(ys + [100.0]) - pad, max(ys + [100.0]) + pad)
        xs = [pt["x"] for pt in pts]
        xpad = 0.15 * (max(xs) - min(xs)) or 0.1 * max(xs) or 1.0
        ax.set_xlim(max(0.0, min(xs) - xpad), max(xs) + xpad)
        hw = hardware.get(p["gpu"], "")
        ax.set_title(
            f"{p['model']} on {p['gpu']}"
            + (f" [{hw}]" if hw and hw != p["gpu"] else "")
            + f"\n{p['mode']} mode, geo. mean over {len(p['use_cases'])} use case(s)"
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy recovery vs bf16 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    return {"panels": len(panels)}


def slo_panels(perf: list[dict], sweep: list[dict], order: list[str]) -> list[dict]:
    """One panel per (model, gpu, use case) with an SLO (perf.csv `slo` rows): its first latency
    target (ttft, tpot, itl, e2el, in that order), and per scheme (in `order`) the curve of that
    metric at the SLO's percentile (`slo_observed`; p99 for rows without it) against the request rate over every async point of perf_sweep.csv (the
    saturated point at its measured throughput), whether each met the SLO, and the sustained
    rate (None when no rate met it)."""
    panels = {}
    for r in perf:
        if r.get("mode") != "slo" or not r.get("slo"):
            continue
        slo = json.loads(r["slo"]) if isinstance(r["slo"], str) else r["slo"]
        metric = next((m for m in ("ttft", "tpot", "itl", "e2el") if slo.get(f"{m}_ms") is not None), None)
        if metric is None:
            continue
        key = (r["model"], r.get("gpu", ""), r["use_case"])
        panel = panels.setdefault(
            key,
            {
                "model": key[0],
                "gpu": key[1],
                "use_case": key[2],
                "metric": metric,
                "target_ms": float(slo[f"{metric}_ms"]),
                "percentile": float(slo.get("percentile", 99)),
                "schemes": {},
            },
        )
        panel["schemes"][r["scheme"]] = {"sustained": num(r.get("request_throughput")), "points": []}
    for r in sweep:
        panel = panels.get((r["model"], r.get("gpu", ""), r.get("use_case")))
        if not panel or r["scheme"] not in panel["schemes"]:
            continue
        rate = num(r.get("request_rate"))
        x = rate if rate is not None else num(r.get("request_throughput"))  # saturated: what it served
        observed = json.loads(r["slo_observed"]) if r.get("slo_observed") else {}
        y = num(observed.get(panel["metric"], r.get(f"p99_{panel['metric']}_ms")))
        if x is not None and y is not None:
            met = r.get("slo_met")
            panel["schemes"][r["scheme"]]["points"].append((x, y, None if met in (None, "") else truthy(met)))
    out = []
    for key in sorted(panels):
        p = panels[key]
        for v in p["schemes"].values():
            v["points"].sort()
        p["schemes"] = {s: p["schemes"][s] for s in sorted(p["schemes"], key=scheme_key(order))}
        out.append(p)
    return out


def plot_slo(panels: list[dict], out, hardware: dict[str, str] | None = None, *, order: list[str]) -> dict:
    """Latency percentile against request rate per scheme, one panel per (model, gpu, use
    case): the SLO target a dashed line, probes that met it filled, the sustained rate a
    vertical line in the scheme's colour."""
    plt = _plt()
    hardware = hardware or {}
    panels = [p for p in panels if any(v["points"] for v in p["schemes"].values())]
    if not panels:
        _empty(plt, out, "No SLO search to draw: no use case with an `slo` was benchmarked.")
        return {"panels": 0}
    colors = scheme_colors(order, (s for p in panels for s in p["schemes"]))
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, p in zip(axes.flat, panels, strict=False):
        ax.axis("on")
        for scheme, v in p["schemes"].items():
            c = colors[scheme]
            xs, ys = [pt[0] for pt in v["points"]], [pt[1] for pt in v["points"]]
            ax.plot(xs, ys, color=c, lw=1, label=scheme)
            for x, y, met in v["points"]:
                ax.scatter([x], [y], s=22, zorder=3, edgecolors=c, facecolors=c if met else "white")
            if v["sustained"] is not None:
                ax.axvline(v["sustained"], color=c, lw=1, ls="--", alpha=0.8)
        ax.axhline(p["target_ms"], color="black", lw=1, ls=":", label=f"SLO {p['target_ms']:g} ms")
        ax.set_yscale("log")
        hw = hardware.get(p["gpu"], "")
        ax.set_title(
            f"{p['model']} on {p['gpu']}" + (f" [{hw}]" if hw and hw != p["gpu"] else "") + f"\n{p['use_case']}"
        )
        ax.set_xlabel("request rate (requests/s; dashed: sustained within the SLO)")
        ax.set_ylabel(f"p{p['percentile']:g} {p['metric'].upper()} (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    return {"panels": len(panels)}
