"""Schemes are data: the config's `schemes` list orders and colours every table, figure and
guideline (quantstudy/core/schemeorder.py), whatever the names and however many; a scheme the
list does not name comes after, by name. Stdlib only (figures: test_plots_draw.py)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from quantstudy.core import schemeorder
from quantstudy.core.config import BASELINE
from quantstudy.evaluate.lmeval import EVAL_FORMAT
from quantstudy.perf import guideline
from quantstudy.perf.perf import split_rows
from quantstudy.report import plots, reporthtml
from quantstudy.summary import summary
from tests.schema import defaults

# Twelve made-up schemes, deliberately not in alphabetical order, bf16 in the middle.
TWELVE = ["zz-last", "q4", "a-first", "bf16", "m8", "nvfp4", "b7", "x-int3", "c2", "w6", "k5", "e1", "d9"]
TWELVE_QUANT = [s for s in TWELVE if s != BASELINE]


def ev(model, scheme, task, score, suite="s"):
    return {
        "model": model,
        "scheme": scheme,
        "task": task,
        "suite": suite,
        "metrics": {"acc,none": {"score": score, "stderr": 0.01, "higher_is_better": True}},
        "n_samples": 100,
    }


def summary_csv_rows(order, scheme_names, model="m"):
    """summary.csv (as csv reads it) of one task per scheme, from build_rows and to_csv."""
    evals = [ev(model, s, "t", 0.5 if s == BASELINE else 0.5 - 0.01 * i) for i, s in enumerate(scheme_names)]
    return list(csv.DictReader(io.StringIO(summary.to_csv(summary.build_rows(evals, order=order)))))


def md_columns(md: str) -> list[list[str]]:
    """The scheme columns of every `| task | metric | ... |` header of a summary.md."""
    return [
        [c.strip() for c in line.strip("|").split("|")][2:]
        for line in md.splitlines()
        if line.startswith(("| task | metric |", "| on | measure |"))
    ]


# ------------------------------------------------------------------ the key and the colours


def test_scheme_key_follows_the_list_then_unlisted_by_name():
    order = ["bf16", "w4a16-int", "my-nvfp4", "w8a8-int"]
    names = ["zeta", "w8a8-int", "alpha", "my-nvfp4", "bf16", "w4a16-int"]
    assert sorted(names, key=schemeorder.scheme_key(order)) == [
        "bf16",
        "w4a16-int",
        "my-nvfp4",
        "w8a8-int",
        "alpha",
        "zeta",
    ]
    # bf16 first where the list leaves it out; the list is respected as given otherwise.
    assert schemeorder.ordered(["b", "bf16", "a", "c"], ["c", "a"]) == ["bf16", "c", "a", "b"]
    assert schemeorder.ordered(["b", "bf16", "a"], ["a", "bf16", "b"]) == ["a", "bf16", "b"]
    assert schemeorder.ordered(["b", "a", "a"], []) == ["a", "b"]


def test_twelve_made_up_schemes_get_twelve_distinct_colours_by_config_position():
    colors = schemeorder.scheme_colors(TWELVE)
    assert colors[BASELINE] == schemeorder.BASELINE_COLOR
    quant = [colors[s] for s in TWELVE_QUANT]
    assert len(set(quant)) == 12 and schemeorder.BASELINE_COLOR not in quant
    assert quant == schemeorder.PALETTE[:12]  # by position in the config order, bf16 skipped
    # Each scheme keeps its colour whichever subset a figure draws (one report, one order).
    assert schemeorder.scheme_colors(TWELVE, ["c2", "q4"])["c2"] == colors["c2"]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in schemeorder.PALETTE)
    assert len(set(schemeorder.PALETTE)) == len(schemeorder.PALETTE)


def test_any_number_of_schemes_has_a_colour_and_unlisted_ones_come_after():
    many = [f"s{i:03d}" for i in range(100)]
    colors = schemeorder.scheme_colors(many)
    assert set(colors) == set(many)  # cycling beyond the palette, never a KeyError
    assert len({colors[s] for s in many[: len(schemeorder.PALETTE)]}) == len(schemeorder.PALETTE)
    extra = schemeorder.scheme_colors(["bf16", "a"], ["zz", "b"])
    assert list(extra) == ["bf16", "a", "b", "zz"]
    assert [extra[s] for s in ("a", "b", "zz")] == schemeorder.PALETTE[:3]


def test_bf16_listed_in_the_middle_keeps_its_position_in_the_order():
    # The config lists bf16 fourth: the order is the config's; the colours skip bf16.
    assert schemeorder.ordered(TWELVE, TWELVE) == TWELVE
    colors = schemeorder.scheme_colors(TWELVE)
    assert list(colors) == TWELVE
    assert colors["m8"] == schemeorder.PALETTE[3]


def test_schemes_option_is_a_json_list_of_distinct_names():
    ap = summary.cli.parser(None)
    schemeorder.add_schemes_arg(ap)
    assert ap.parse_args(["--schemes", '["bf16", "my-nvfp4"]']).schemes == ["bf16", "my-nvfp4"]
    for bad in ('{"bf16": 1}', '["bf16", 3]', '["a", "a"]', "[bf16]", '[""]'):
        with pytest.raises(SystemExit):
            ap.parse_args(["--schemes", bad])
    with pytest.raises(SystemExit):  # required: the rules always pass the config's list
        ap.parse_args([])


# ------------------------------------------------------------------ summary


def test_summary_csv_and_md_follow_the_config_order_of_twelve_schemes():
    rows = summary_csv_rows(TWELVE, list(reversed(TWELVE)))
    tasks = [r["scheme"] for r in rows if r["level"] == "task"]
    assert tasks == TWELVE
    assert [r["scheme"] for r in rows if r["level"] == "suite"] == TWELVE
    md = summary.to_markdown(summary.build_rows([ev("m", s, "t", 0.5) for s in TWELVE], order=TWELVE), order=TWELVE)
    assert md_columns(md) == [TWELVE]


def test_a_scheme_not_in_the_papers_list_flows_through_the_summary():
    order = ["bf16", "my-nvfp4", "w8a8-int"]
    rows = summary_csv_rows(order, ["w8a8-int", "bf16", "my-nvfp4"])
    assert [r["scheme"] for r in rows if r["level"] == "task"] == order
    nv = [r for r in rows if r["scheme"] == "my-nvfp4" and r["level"] == "task"][0]
    assert float(nv["recovery_pct"]) == pytest.approx(0.48 / 0.5 * 100)
    # Present in the results but not in the list: after the listed ones, by name.
    rows = summary_csv_rows(["bf16", "w8a8-int"], ["my-nvfp4", "w8a8-int", "bf16", "aaa-new"])
    assert [r["scheme"] for r in rows if r["level"] == "task"] == ["bf16", "w8a8-int", "aaa-new", "my-nvfp4"]


def test_summary_entry_point_takes_the_order_from_schemes(tmp_path):
    order = ["bf16", "my-nvfp4", "w4a16-int", "a-custom"]
    paths = []
    for s in sorted(order):
        p = tmp_path / f"{s}.json"
        p.write_text(json.dumps({"format": EVAL_FORMAT, **ev("m", s, "t", 0.4 if s != BASELINE else 0.5)}))
        paths.append(str(p))
    out_csv, out_md = tmp_path / "summary.csv", tmp_path / "summary.md"
    args = [*paths, "--csv", str(out_csv), "--md", str(out_md)]
    args += ["--significance", json.dumps(defaults("significance")), "--schemes", json.dumps(order)]
    assert summary.main(args) == 0
    got = [r["scheme"] for r in csv.DictReader(out_csv.open()) if r["level"] == "task"]
    assert got == order
    assert md_columns(out_md.read_text()) == [order]


def test_similarity_rows_and_tables_follow_the_order():
    order = ["bf16", "k5", "b7", "my-nvfp4"]
    sim = {
        "text": {m: {"mean": 0.9, "stderr": 0.01, "n": 5} for m in summary.SIMILARITY_METRICS},
        "kl": {"mean_per_token": 0.01, "stderr": 0.001, "n_tokens": 50, "top1_agreement": 0.95},
        "flips": {},
    }
    sims = [{"model": "m", "scheme": s, **sim} for s in ("my-nvfp4", "bf16", "b7", "k5")]
    rows = summary.similarity_rows(sims, order=order)
    assert list(dict.fromkeys(r["scheme"] for r in rows)) == ["k5", "b7", "my-nvfp4"]
    assert md_columns("\n".join(summary.similarity_markdown(rows, order=order))) == [["k5", "b7", "my-nvfp4"]]


# ------------------------------------------------------------------ figures' data, report tables


def test_plots_and_report_tables_follow_the_config_order_of_twelve_schemes():
    rows = summary_csv_rows(TWELVE, sorted(TWELVE))
    bars = plots.recovery_bars_data(rows, TWELVE)["m"]
    assert bars["schemes"] == TWELVE_QUANT
    perf = [
        {"model": "m", "scheme": s, "gpu": "g", "use_case": "chat", "mode": "sync", "request_throughput": str(i + 1)}
        for i, s in enumerate(sorted(TWELVE))
    ]
    (panel,) = plots.tradeoff_panels(rows, perf, "request_throughput", TWELVE)
    assert [p["scheme"] for p in panel["points"]] == TWELVE
    page = reporthtml.recovery_page(rows, TWELVE)
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", page).group(1)
    assert re.findall(r"<th>(.*?)</th>", header)[2:] == TWELVE


# ------------------------------------------------------------------ perf table, guideline


def test_perf_rows_and_guideline_ties_follow_the_order():
    order = ["bf16", "my-nvfp4", "w8a8-int"]
    perf = [
        {"model": "m", "gpu": "g", "use_case": "chat", "mode": "sync", "rate_fraction": None, "scheme": s}
        for s in ("w8a8-int", "zz-unlisted", "my-nvfp4", "bf16")
    ]
    main, _ = split_rows(perf, order)
    assert [r["scheme"] for r in main] == ["bf16", "my-nvfp4", "w8a8-int", "zz-unlisted"]

    cost = [
        {"model": "m", "gpu": "g", "mode": "sync", "use_case": "chat", "scheme": s, "queries_per_dollar": 100.0}
        for s in ("w8a8-int", "my-nvfp4")
    ]
    rec = {("m", "w8a8-int"): (100.0, "s"), ("m", "my-nvfp4"): (100.0, "s")}
    (row,) = guideline.recommend(cost, rec, 99.0, order)
    assert row["recommended"] == "my-nvfp4" and row["runner_up"] == "w8a8-int"  # tie: listed first wins
    (row,) = guideline.recommend(cost, rec, 99.0, ["bf16", "w8a8-int", "my-nvfp4"])
    assert row["recommended"] == "w8a8-int"
    md = guideline.to_markdown([row], 99.0, order=["w8a8-int", "my-nvfp4"])
    assert "then to bf16, w8a8-int, my-nvfp4 in that order" in md
