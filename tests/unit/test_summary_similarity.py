"""Similarity rows in summary.csv / summary.md (level "similarity", quantized schemes only)."""

import csv
import io
import json

import pytest

from quantstudy.similarity.textsim import SIMILARITY_FORMAT, TEXT_METRICS
from quantstudy.summary.summary import FIELDS, build_rows, read_similarity_json, similarity_rows, to_csv, to_markdown

ORDER = ["bf16", "w8a8-fp", "w8a8-int", "w4a16-int"]  # config/config.yaml's `schemes`, as the rules pass it


def sim(scheme, value, kl=0.0, flips=0):
    flip = {
        "metric": "acc,none",
        "n": 10,
        "flips": flips,
        "correct_to_wrong": flips,
        "wrong_to_correct": 0,
        "flip_rate": flips / 10,
        "flip_rate_stderr": 0.01,
        "correct_to_wrong_rate": flips / 10,
        "wrong_to_correct_rate": 0.0,
    }
    return {
        "format": SIMILARITY_FORMAT,
        "model": "m",
        "scheme": scheme,
        "prompt_set": "ps",
        "text": {m: {"mean": value, "stderr": 0.0, "n": 4} for m in TEXT_METRICS},
        "kl": {"mean_per_token": kl, "stderr": 0.001, "n_tokens": 20, "top1_agreement": 1.0},
        "flips": {"a": flip, "b": {"metric": "f1,none", "skipped": "not 0/1"}},
        "flips_all_tasks": {"n": 10, "flips": flips, "flip_rate": flips / 10, "flip_rate_stderr": 0.01},
    }


def ev(scheme, score):
    return {
        "model": "m",
        "scheme": scheme,
        "task": "a",
        "suite": "s",
        "metrics": {"acc,none": {"score": score, "stderr": 0.01}},
        "n_samples": 10,
    }


def test_rows_for_quantized_schemes_only():
    rows = similarity_rows([sim("bf16", 1.0), sim("w8a8-fp", 0.9, kl=0.02, flips=1)], [ev("bf16", 0.5)], order=ORDER)
    assert {r["scheme"] for r in rows} == {"w8a8-fp"} and {r["level"] for r in rows} == {"similarity"}
    by = {(r["task"], r["metric"]): r for r in rows}
    assert by[("ps", "rouge1")]["score"] == 0.9 and by[("ps", "rouge1")]["n"] == 4
    assert by[("ps", "kl_per_token")]["score"] == 0.02 and by[("ps", "kl_per_token")]["n"] == 20
    flip = by[("a", "flip_rate(acc,none)")]
    assert flip["score"] == 0.1 and flip["suite"] == "s" and flip["recovery_pct"] is None
    assert ("b", "flip_rate(f1,none)") not in by  # skipped: not a 0/1 metric
    assert by[("all_tasks", "flip_rate")]["n"] == 10


def test_csv_keeps_columns_and_accuracy_rows_untouched():
    evals = [ev("bf16", 0.5), ev("w8a8-fp", 0.4)]
    plain = build_rows(evals, order=ORDER)
    rows = plain + similarity_rows([sim("bf16", 1.0), sim("w8a8-fp", 0.9)], evals, order=ORDER)
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0]) == FIELDS
    assert parsed[: len(plain)] == list(csv.DictReader(io.StringIO(to_csv(plain))))
    sims = [r for r in parsed if r["level"] == "similarity"]
    assert sims and all(r["recovery_pct"] == "" and r["bf16_score"] == "" for r in sims)


def test_markdown_has_a_separate_drift_table():
    evals = [ev("bf16", 0.5), ev("w8a8-fp", 0.4), ev("w4a16-int", 0.3)]
    rows = build_rows(evals, order=ORDER) + similarity_rows(
        [sim("w8a8-fp", 0.9), sim("w4a16-int", 0.8, kl=0.5)], evals, order=ORDER
    )
    rows[-1]["score"] = None  # a measure a scheme lacks shows as a dash
    md = to_markdown(rows, order=ORDER)
    accuracy, drift = md.split("## m: drift from bf16")
    assert "rouge1" not in accuracy and "BERTScore" not in accuracy
    assert "| on | measure | w8a8-fp | w4a16-int |" in drift
    assert "| ps | ROUGE-1 F | 0.9000 ± 0.0000 | 0.8000 ± 0.0000 |" in drift
    assert "| ps | KL(bf16 ‖ scheme), nats/token | 0 ± 0.001 | 0.5 ± 0.001 |" in drift
    assert drift.rstrip().splitlines()[-1].endswith("| — |")
    assert md.startswith(to_markdown(build_rows(evals, order=ORDER), order=ORDER))  # the accuracy tables are unchanged


def test_read_similarity_json_names_bad_files(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sim("w8a8-fp", 0.9)))
    assert read_similarity_json(good)["scheme"] == "w8a8-fp"
    bad = tmp_path / "bad.json"
    bad.write_text(good.read_text()[:50])
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        read_similarity_json(bad)
    with pytest.raises(ValueError, match="missing"):
        read_similarity_json(tmp_path / "absent.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "x"}))
    with pytest.raises(ValueError, match="not a quantstudy similarity"):
        read_similarity_json(other)
