"""Writing a report folder whole or not at all: assembled under a temporary name and swapped in."""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from analysis.load import load_run
from analysis.report.content import build_sections
from analysis.report.render import render_html, render_markdown
from experiments import catalog

DEFAULT_OUTPUT = Path("results") / "report"


def write_report(run_dirs: list[str | Path], output: str | Path = DEFAULT_OUTPUT, fmt: str = "markdown",
                 title: str = "Monte Carlo gradient estimators: report", command: str | None = None,
                 allow_partial: bool = False) -> Path:
    """Write the report of ``run_dirs`` into the folder ``output`` and return the report file's path.

    The folder holds ``report.md`` (or ``report.html``), ``figures/`` and ``tables/``; it is assembled
    under a temporary name and swapped in whole, so a failed or interrupted call leaves any earlier
    report untouched and never a half-written one.  ``allow_partial``: also report ``.partial`` run folders
    (interrupted or still running), from the cells they finished, marked as incomplete.
    """
    if fmt not in ("markdown", "html"):
        raise ValueError(f"format must be 'markdown' or 'html', got {fmt!r}.")
    if not run_dirs:
        raise ValueError("Give at least one run folder, such as results/variance_vs_L/<run_id>.")
    runs = [load_run(path, allow_partial) for path in run_dirs]  # refuses missing, non-run and (unless allowed) partial
    for run in runs:
        experiment = run.config.get("experiment", "variance_vs_L")
        if experiment not in catalog.names():
            raise ValueError(f"{run.path}: experiment {experiment!r} has no report section; known experiments: "
                             f"{', '.join(catalog.names())}.")
    output = Path(output)
    if output.resolve() in {run.path.resolve() for run in runs}:
        raise ValueError(f"--output {output} is a run folder; choose another folder for the report.")
    if output.exists() and not _is_report_folder(output):
        raise ValueError(f"{output} exists and is not a report folder; choose an empty or new --output.")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f"{output.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / "figures").mkdir()
        sections = build_sections(runs, staging)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        preamble = (f"Made by `{command or 'analysis.report.write_report'}` on {now} from {len(runs)} run "
                    f"folder{'s' if len(runs) > 1 else ''}. Each section below is one run: what it measured, "
                    "the recommendation or summary table, the figures, and its measurements against exact values.")
        if fmt == "markdown":
            report = staging / "report.md"
            report.write_text(render_markdown(title, preamble, sections), encoding="utf-8")
        else:
            report = staging / "report.html"
            report.write_text(render_html(title, preamble, sections, staging), encoding="utf-8")
        _swap_in(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output / report.name


def _is_report_folder(path: Path) -> bool:
    """An empty folder, or one an earlier report wrote (it may be replaced)."""
    return path.is_dir() and (not any(path.iterdir()) or (path / "report.md").is_file()
                              or (path / "report.html").is_file())


def _swap_in(staging: Path, output: Path) -> None:
    """Replace ``output`` by ``staging`` with renames only: the old folder is moved aside first."""
    retired = output.with_name(f"{output.name}.old-{os.getpid()}")
    if output.exists():
        output.rename(retired)
    staging.rename(output)
    shutil.rmtree(retired, ignore_errors=True)
