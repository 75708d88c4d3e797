"""One report from run folders: ``python -m analysis.report RUN_DIR [RUN_DIR ...]``.

The report answers, from the results alone, which estimator to use on each problem at each sample
budget and why: for every run it draws the experiment's figures and writes its tables (the
recommendation, measured against exact values with z-scores, the best temperatures, the end of each
training curve).  It is written as Markdown beside its PNG figures (``report.md``, ``figures/``), or
as one self-contained HTML file with the figures embedded (``--format html``), with every table in
full as CSV under ``tables/``.  The folder is written whole or not at all: it is assembled under a
temporary name and renamed at the end, replacing an older report there.

The package: :mod:`~analysis.report.content` (what the report says, per experiment),
:mod:`~analysis.report.formatting`, :mod:`~analysis.report.render` (Markdown and HTML),
:mod:`~analysis.report.writing` (the folder, written whole or not at all) and
:mod:`~analysis.report.cli`.
"""

from analysis.report.cli import main
from analysis.report.content import Figure, Section, Table, build_sections
from analysis.report.formatting import format_number, formatted
from analysis.report.render import render_html, render_markdown
from analysis.report.writing import DEFAULT_OUTPUT, write_report

__all__ = ["DEFAULT_OUTPUT", "Figure", "Section", "Table", "build_sections", "format_number",
           "formatted", "main", "render_html", "render_markdown", "write_report"]
