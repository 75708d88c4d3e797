"""The report's two renderers: Markdown beside its figures, and one self-contained HTML file."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from analysis.report.content import Figure, Section, Table

_HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; } td:first-child, td:nth-child(2) { text-align: left; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; } figcaption, .caption { color: #444; font-size: 0.9em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def render_markdown(title: str, preamble: str, sections: list[Section]) -> str:
    lines = [f"# {title}", "", preamble, ""]
    for section in sections:
        lines += [f"{'#' * section.level} {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Figure):
                lines += [f"![{block.path.stem}]({block.path.as_posix()})", "", f"*{block.caption}*", ""]
            elif isinstance(block, Table):
                lines += [f"*{block.caption}*" + (f" Full table: [{block.csv.as_posix()}]({block.csv.as_posix()})."
                                                    if block.csv else ""), ""]
                lines += _markdown_table(block.frame) + [""]
            else:
                lines += [block, ""]
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> list[str]:
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def _inline_html(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", escaped)


def render_html(title: str, preamble: str, sections: list[Section], folder: Path) -> str:
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{_inline_html(preamble)}</p>",
    ]
    for section in sections:
        parts.append(f"<h{section.level}>{_inline_html(section.title)}</h{section.level}>")
        for block in section.blocks:
            if isinstance(block, Figure):
                data = base64.b64encode((folder / block.path).read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(block.path.stem)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>")
            elif isinstance(block, Table):
                link = f" Full table: <a href='{block.csv.as_posix()}'>{block.csv.as_posix()}</a>." if block.csv else ""
                parts.append(f"<p class='caption'>{_inline_html(block.caption)}{link}</p>")
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block.frame.columns)
                body = "".join("<tr>" + "".join(f"<td>{_inline_html(str(v))}</td>" for v in row) + "</tr>"
                               for row in block.frame.itertuples(index=False))
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:
                parts.append(f"<p>{_inline_html(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
