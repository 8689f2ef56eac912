"""The report a researcher reads: `snakemake --report results/report.html` of the default
study, opened in headless Chromium and clicked through as a reader would.

Chromium is Debian's (/usr/bin/chromium; tests/browser/install-chromium.sh installs it,
and this test runs it where it is missing and we are root), driven by Playwright for
Python with executable_path (never `playwright install`, which downloads a browser).
The report must be self-contained: any request other than the report file itself or a
data: URI is aborted and fails the test, as do console errors, page errors and failed
requests. Needs the study's performance stage (perf.csv, cost.csv, guideline.md).
"""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from quantstudy.core import paths
from tests.workspace import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# (category, subcategory to click or None, text of the result's row, kind, phrases its caption must state)
EXPECTED = [
    (
        "1. Accuracy",
        "Recovery vs bf16",
        "recovery figure",
        "img",
        ["recovery", "paired-bootstrap 95% interval", "Measured"],
    ),
    ("1. Accuracy", "Recovery vs bf16", "recovery table", "html", ["standard error", "ratio of the two averages"]),
    ("1. Accuracy", "Similarity to bf16", "similarity figure", "img", ["BERTScore", "1 = identical", "standard error"]),
    ("1. Accuracy", "Similarity to bf16", "similarity table", "html", ["KL divergence", "BERTScore"]),
    (
        "2. Accuracy vs performance",
        None,
        "accuracy vs throughput",
        "img",
        ["request throughput", "Pareto front", "Hardware", "geometric mean"],
    ),
    (
        "2. Accuracy vs performance",
        None,
        "accuracy vs queries per dollar",
        "img",
        ["queries per dollar", "Pareto front", "Hardware"],
    ),
    (
        "2. Accuracy vs performance",
        None,
        "latency vs request rate within the SLO",
        "img",
        ["sustained rate", "SLO", "Hardware"],
    ),
    ("3. Deployment guideline", None, "guideline", "html", ["recommended scheme", "floor"]),
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.skip("chromium is not installed and installing it needs root")
        subprocess.run(["bash", str(ROOT / "tests/browser/install-chromium.sh")], check=True, timeout=900)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def report(study, tmp_path_factory) -> Path:
    # The report needs every stage, its performance stage included.
    study.need(paths.SUMMARY_CSV, paths.PERF_CSV, paths.COST_CSV, paths.GUIDELINE_MD, *paths.REPORT_OUTPUTS)
    wf = study.copy(tmp_path_factory.mktemp("report") / "wf")  # writes results/report.html
    wf.snakemake("--report", paths.REPORT_HTML)
    out = wf.path(paths.REPORT_HTML)
    assert out.is_file() and out.stat().st_size > 0
    return out


class Session:
    """A page on the report with every error and every outside request recorded."""

    def __init__(self, browser, report: Path):
        self.console_errors, self.page_errors, self.failed, self.outside = [], [], [], []
        self.context = browser.new_context(viewport={"width": 1600, "height": 1000})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url[:120]} {r.failure}"))
        self.url = report.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")
        self.page.wait_for_selector("#app nav")

    def _route(self, route):
        url = route.request.url
        if url == self.url or url.startswith("data:"):
            route.continue_()
        else:  # the report must not need the network (there is none here)
            self.outside.append(url)
            route.abort()

    def assert_clean(self):
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.failed == [], self.failed
        assert self.outside == [], f"requests outside the report: {self.outside}"


@pytest.fixture
def session(browser, report):
    s = Session(browser, report)
    yield s
    s.context.close()


def rendered_size(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return (box["width"], box["height"]) if box else (0.0, 0.0)


def test_landing_page_describes_the_study_and_draws_the_rule_graph(session, study):
    page = session.page
    page.wait_for_selector("div#rulegraph canvas, div#rulegraph svg", timeout=15000)
    text = page.inner_text("body")
    assert "quantstudy: accuracy and performance of quantized LLMs" in text
    assert "tiny-llama" in text and "recovery" in text  # the config, rendered into the description
    w, h = rendered_size(page.locator("div#rulegraph canvas, div#rulegraph svg").first)
    assert w > 0 and h > 0
    spec = page.evaluate("() => document.querySelector('script#rulegraph').textContent")
    for rule in ("quantize", "evaluate", "summary", "figures", "report_tables"):
        assert f'"{rule}"' in spec, rule
    for item in (
        "Workflow",
        "Statistics",
        "1. Accuracy",
        "2. Accuracy vs performance",
        "3. Deployment guideline",
        "4. Data",
    ):
        assert page.get_by_text(item, exact=True).first.is_visible(), item
    session.assert_clean()


def test_every_result_renders_with_its_caption(session, study):
    page = session.page
    with open(study.path(paths.PERF_CSV), newline="") as f:
        hardware = sorted({r["hardware"] for r in csv.DictReader(f) if r.get("hardware")})
    assert hardware, "perf.csv records no hardware"
    shown = 0
    for category, subcategory, row_text, kind, phrases in EXPECTED:
        page.locator("nav ol a").first.click()  # the breadcrumb's home: back to the menu
        page.get_by_text(category, exact=True).first.click()
        if subcategory:
            page.get_by_text(subcategory, exact=True).first.click()
        row = page.locator("nav tr", has_text=row_text).first
        row.wait_for(timeout=5000)
        if category.startswith("2."):
            assert any(hw in row.inner_text() for hw in hardware), (row_text, row.inner_text(), hardware)
        buttons = row.locator("a")
        buttons.nth(0).click()  # the eye: show it
        if kind == "img":
            img = page.locator("img[src^='data:image/svg+xml']").last
            img.wait_for(timeout=10000)
            page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
            w, h = rendered_size(img)
            assert w > 100 and h > 100, (row_text, w, h)
        else:
            frame_el = page.locator("iframe").first
            frame_el.wait_for(timeout=10000)
            w, h = rendered_size(frame_el)
            assert w > 100 and h > 100, (row_text, w, h)
            frame = frame_el.element_handle().content_frame()
            frame.wait_for_selector("table, p")
            assert frame.locator("h1, h2").count() > 0, row_text
            if row_text != "similarity table" or frame.locator("table").count():
                assert frame.locator("table tr").count() > 1, row_text
        buttons.nth(1).click()  # the info button: the caption
        info = page.locator("nav").first.inner_text()
        for phrase in phrases:
            assert phrase in info, (row_text, phrase, info[:2000])
        shown += 1
    assert shown == len(EXPECTED)
    session.assert_clean()


def test_report_is_one_self_contained_file(report):
    html = report.read_text()
    assert "<script src=" not in html and '<link rel="stylesheet" href=' not in html
    assert html.count("data:image/svg+xml") >= 3  # the figures are embedded, not linked
