"""quantstudy/report/figures.py draws valid, deterministic SVG and PNG figures from hand-made CSVs, in
the analysis env that runs rule `figures` (matplotlib lives there, not in the test runner's
env; built by `python3 -m tools.setup_envs analysis`). Covers summary.csv with and without
the recovery interval columns, missing perf/cost inputs, and twelve made-up schemes drawn in the
config's order, each in its own colour."""

from __future__ import annotations

import csv
import json
import os
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from quantstudy.core import schemeorder
from tests.unit.test_plots import ORDER, perf_rows, summary

ROOT = Path(__file__).resolve().parents[2]


def analysis_python() -> str:
    venvs = Path(os.environ.get("QUANTSTUDY_VENVS", ROOT / ".venv"))
    py = venvs / "analysis" / "bin" / "python"
    if not py.exists():
        pytest.fail(f"analysis env missing ({py}): build it with `python3 -m tools.setup_envs analysis`")
    return str(py)


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    return path


def plot(tmp_path: Path, *args: str, order: list[str] = ORDER) -> subprocess.CompletedProcess:
    # PYTHONPATH: this checkout's package, not the one the env was installed from (editable, maybe elsewhere).
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl"), "PYTHONPATH": pythonpath}
    p = subprocess.run(
        [analysis_python(), str(ROOT / "quantstudy/report/figures.py"), *args, "--schemes", json.dumps(order)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-4000:]
    return p


def svg_size(path: Path) -> tuple[float, float]:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    w, h = (float(root.get(k).removesuffix("pt")) for k in ("width", "height"))
    return w, h


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def inputs(tmp_path):
    cost = [dict(r, queries_per_dollar=str(float(r["request_throughput"]) * 3600 / 2.5)) for r in perf_rows()]
    return {
        "ci": write_csv(tmp_path / "summary_ci.csv", summary(ci=True)),
        "noci": write_csv(tmp_path / "summary.csv", summary(ci=False)),
        "perf": write_csv(tmp_path / "perf.csv", perf_rows()),
        "cost": write_csv(tmp_path / "cost.csv", cost),
    }


def test_svg_figures_are_valid_and_deterministic(tmp_path, inputs):
    outs = {}
    for run in ("a", "b"):
        d = tmp_path / run
        plot(
            tmp_path,
            "--summary",
            str(inputs["ci"]),
            "--perf",
            str(inputs["perf"]),
            "--cost",
            str(inputs["cost"]),
            "--recovery",
            str(d / "recovery.svg"),
            "--similarity",
            str(d / "similarity.svg"),
            "--throughput",
            str(d / "tp.svg"),
            "--cost-figure",
            str(d / "cost.svg"),
        )
        outs[run] = {f.name: f.read_bytes() for f in sorted(d.iterdir())}
    assert sorted(outs["a"]) == ["cost.svg", "recovery.svg", "similarity.svg", "tp.svg"]
    for name, data in outs["a"].items():
        w, h = svg_size(tmp_path / "a" / name)
        assert w > 100 and h > 50, (name, w, h)
        assert b"<dc:date>" not in data, name  # no timestamp in the metadata
        assert data == outs["b"][name], f"{name} differs between two runs"
    rec = outs["a"]["recovery.svg"].decode()
    assert "95% interval" in rec or "interval" in rec


def test_png_and_no_interval_columns(tmp_path, inputs):
    p = plot(
        tmp_path,
        "--summary",
        str(inputs["noci"]),
        "--perf",
        str(inputs["perf"]),
        "--recovery",
        str(tmp_path / "recovery.png"),
        "--throughput",
        str(tmp_path / "tp.png"),
    )
    assert "'intervals': False" in p.stderr
    for name in ("recovery.png", "tp.png"):
        w, h = png_size(tmp_path / name)
        assert w > 200 and h > 100, (name, w, h)


def test_missing_perf_and_cost_still_draw_a_figure_that_says_so(tmp_path, inputs):
    p = plot(
        tmp_path,
        "--summary",
        str(inputs["noci"]),
        "--perf",
        str(tmp_path / "absent.csv"),
        "--cost",
        str(tmp_path / "absent2.csv"),
        "--recovery",
        str(tmp_path / "r.svg"),
        "--throughput",
        str(tmp_path / "tp.svg"),
        "--cost-figure",
        str(tmp_path / "c.svg"),
        "--similarity",
        str(tmp_path / "s.svg"),
    )
    assert "does not exist" in p.stderr and "'panels': 0" in p.stderr
    for name in ("r.svg", "tp.svg", "c.svg", "s.svg"):
        assert svg_size(tmp_path / name)[0] > 0


def test_twelve_made_up_schemes_each_draw_in_their_own_colour_in_config_order(tmp_path):
    from tests.unit.test_scheme_order import TWELVE, TWELVE_QUANT, summary_csv_rows

    rows = summary_csv_rows(TWELVE, sorted(TWELVE))
    perf = [
        {"model": "m", "scheme": s, "gpu": "g", "use_case": "chat", "mode": "sync", "request_throughput": str(i + 1)}
        for i, s in enumerate(sorted(TWELVE))
    ]
    plot(
        tmp_path,
        "--summary",
        str(write_csv(tmp_path / "summary.csv", rows)),
        "--perf",
        str(write_csv(tmp_path / "perf.csv", perf)),
        "--recovery",
        str(tmp_path / "r.svg"),
        "--throughput",
        str(tmp_path / "tp.svg"),
        order=TWELVE,
    )
    colors = schemeorder.scheme_colors(TWELVE)
    for name, drawn in (("r.svg", TWELVE_QUANT), ("tp.svg", TWELVE)):
        svg = (tmp_path / name).read_text()
        fills = set(re.findall(r"(?:fill|stroke): (#[0-9a-f]{6})", svg))  # off-front points: edge only
        assert {colors[s] for s in drawn} <= fills, name
        # the legend lists the schemes in the config's order (matplotlib names each text in a comment)
        legend = svg[svg.index('id="legend_1"') :]
        labels = [t for t in re.findall(r"<!-- (.*?) -->", legend) if t.split(" ")[0] in drawn]
        assert [t.split(" ")[0] for t in labels] == drawn, name


def test_slo_figure_draws_and_says_when_there_is_no_search(tmp_path, inputs):
    from tests.unit.test_plots import slo_inputs

    perf, sweep = slo_inputs()
    p = plot(
        tmp_path,
        "--summary",
        str(inputs["noci"]),
        "--perf",
        str(write_csv(tmp_path / "slo_perf.csv", perf)),
        "--sweep",
        str(write_csv(tmp_path / "sweep.csv", sweep)),
        "--recovery",
        str(tmp_path / "r.svg"),
        "--slo-figure",
        str(tmp_path / "slo.svg"),
    )
    assert "slo: {'panels': 1}" in p.stderr and "SLO 500 ms" in (tmp_path / "slo.svg").read_text()
    p = plot(
        tmp_path,
        "--summary",
        str(inputs["noci"]),
        "--recovery",
        str(tmp_path / "r.svg"),
        "--slo-figure",
        str(tmp_path / "none.svg"),
    )
    assert "slo: {'panels': 0}" in p.stderr and svg_size(tmp_path / "none.svg")[0] > 0
