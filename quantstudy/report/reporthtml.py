"""Self-contained HTML pages of the report's tables (recovery, similarity, guideline).

Snakemake's report shows HTML results in a frame and offers other text files only as a
download, so the markdown tables the workflow writes (summary.md, guideline.md) are turned
into small HTML pages here: the subset of markdown they use (headings, paragraphs, lists,
pipe tables, `code`, **bold**), no external stylesheet, script or font.
"""

from __future__ import annotations

import html
import re

from quantstudy.report.plots import num
from quantstudy.summary.summary import SIMILARITY_LEVEL, similarity_markdown, to_markdown

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; margin: 1.2em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td { white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f4f4f4; padding: 0 3px; border-radius: 3px; }
p.note { color: #555; }
"""

NUMERIC = (
    "score",
    "stderr",
    "n",
    "bf16_score",
    "bf16_stderr",
    "recovery_pct",
    "recovery_ci_low",
    "recovery_ci_high",
    "n_paired",
)


def _inline(text: str) -> str:
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            part = html.escape(part)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part))
    return "".join(out)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def markdown_to_html(md: str) -> str:
    """The body HTML of markdown made of headings, paragraphs, lists and pipe tables."""
    lines = md.splitlines()
    out, para, i = [], [], 0

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i].rstrip()
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if not line.strip():
            flush()
        elif m:
            flush()
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|?\s*:?-+", lines[i + 1]):
            flush()
            head = _cells(line)
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[i])) + "</tr>")
                i += 1
            out.append("</tbody></table>")
            continue
        elif re.match(r"^\s*[-*]\s+", line):
            flush()
            out.append("<ul>")
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                item = re.sub(r"^\s*[-*]\s+", "", lines[i])
                out.append(f"<li>{_inline(item)}</li>")
                i += 1
            out.append("</ul>")
            continue
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(out)


def page(title: str, body_html: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body_html}\n</body></html>\n"
    )


def typed_rows(rows: list[dict]) -> list[dict]:
    """summary.csv rows (strings) with the numeric columns as floats/None, as summary.py builds them."""
    out = []
    for r in rows:
        t = dict(r)
        for k in NUMERIC:
            if k in t:
                t[k] = num(t[k])
        out.append(t)
    return out


def recovery_page(summary: list[dict], order: list[str]) -> str:
    """The scores and recovery tables; columns in scheme order (`order`: the config's `schemes`)."""
    rows = [r for r in typed_rows(summary) if r.get("level") != SIMILARITY_LEVEL]
    if not rows:
        return page("Accuracy recovery", "<h1>Accuracy recovery</h1><p>No evaluation rows in summary.csv.</p>")
    return page("Accuracy recovery", markdown_to_html(to_markdown(rows, order=order)))


def similarity_page(summary: list[dict], order: list[str]) -> str:
    """The drift tables; columns in scheme order (`order`: the config's `schemes`)."""
    rows = [r for r in typed_rows(summary) if r.get("level") == SIMILARITY_LEVEL]
    if not rows:
        body = (
            '<h1>Similarity to bf16</h1><p class="note">The text-similarity stage did not run '
            "(no <code>similarity:</code> block in the config).</p>"
        )
    else:
        body = "<h1>Similarity to bf16</h1>\n" + markdown_to_html("\n".join(similarity_markdown(rows, order=order)))
    return page("Similarity to bf16", body)


def markdown_page(title: str, md: str) -> str:
    return page(title, markdown_to_html(md))
