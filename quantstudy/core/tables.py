"""CSV tables of this package: written with a fixed column order, read back with numbers parsed."""

from __future__ import annotations

import csv
import io
from pathlib import Path


def _fmt(x):
    """The one cell format of every CSV: '' for None, true/false, floats to 10 significant
    digits (finer than any measurement here, short enough to read)."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return f"{x:.10g}"
    return str(x)


def to_csv(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in fields})
    return buf.getvalue()


def read_csv(path: str | Path) -> list[dict]:
    """A CSV written by this package back as dicts of floats/ints/strings ('' -> None)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(v: str):
    if v == "":
        return None
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v
