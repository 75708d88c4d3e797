"""The documentation's code runs and its reference covers the package.

Every ``.. code-block:: python`` block of a page under ``docs/`` runs, the page's blocks in order in one
fresh namespace, under the suite's strict settings (tests/conftest.py: key-reuse checking, rank
promotion raises, warnings are errors).  A block marked ``:class: no-run`` is shown but not run (code
for packages the project does not depend on).  Sphinx is not needed: the pages are read as text.
"""

import re
import textwrap
from pathlib import Path

import pytest

import estimators as est

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(path for path in DOCS.rglob("*.rst") if "_build" not in path.parts)
GUIDE = sorted((DOCS / "guide").glob("*.rst"))
API = sorted((DOCS / "api").glob("*.rst"))

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<language>\S*)\s*$")
_OPTION = re.compile(r"^\s*:(?P<name>[\w-]+):\s*(?P<value>.*)$")


def code_blocks(text: str) -> list[tuple[int, str, str, set[str]]]:
    """``(line, language, code, classes)`` for each ``code-block`` directive of a reST page, ``line`` the
    1-based line of the code's first line."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        indent = len(match["indent"])
        classes: set[str] = set()
        while i < len(lines) and (option := _OPTION.match(lines[i])):
            if option["name"] == "class":
                classes.update(option["value"].split())
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        while body and not body[0].strip():
            body.pop(0)
        first_line = i - len(body) + 1
        blocks.append((first_line, match["language"], textwrap.dedent("\n".join(body)).strip("\n"), classes))
    return blocks


def runnable(page: Path) -> list[tuple[int, str]]:
    """The page's python blocks that run: ``(line, code)``."""
    return [(line, code) for line, language, code, classes in code_blocks(page.read_text())
            if language == "python" and "no-run" not in classes]


def test_the_parser_finds_blocks_options_and_their_lines():
    page = textwrap.dedent("""\
        Title

        .. code-block:: python

           x = 1

           y = x + 1

        text

        .. code-block:: python
           :class: no-run

           import missing_package

        - item

          .. code-block:: python

             z = 3
        """)
    blocks = code_blocks(page)
    assert [(line, language, classes) for line, language, _, classes in blocks] == [
        (5, "python", set()), (14, "python", {"no-run"}), (20, "python", set())]
    assert blocks[0][2] == "x = 1\n\ny = x + 1"
    assert blocks[2][2] == "z = 3"


@pytest.mark.parametrize("page", GUIDE, ids=lambda page: page.stem)
def test_every_guide_page_has_code_that_runs(page):
    assert runnable(page), f"{page.relative_to(DOCS)} has no python code-block that runs"


@pytest.mark.parametrize("page", [page for page in PAGES if runnable(page)],
                         ids=lambda page: str(page.relative_to(DOCS).with_suffix("")))
def test_page_code_runs(page):
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for line, code in runnable(page):
        # Padded to its line, so a traceback points into the page.
        exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)


def test_the_estimator_table_lists_every_registered_estimator():
    table = (DOCS / "api" / "estimators.rst").read_text()
    missing = [name for name in est.names() if f"``{name}``" not in table]
    assert not missing, f"docs/api/estimators.rst lacks registered estimators: {missing}"


def test_the_reference_documents_every_public_name():
    reference = "\n".join(page.read_text() for page in API)
    documented = set(re.findall(r"^\.\. auto\w+:: (?:estimators\.)?([\w.]+)", reference, re.MULTILINE))
    missing = sorted(name for name in est.__all__ if name not in documented)
    assert not missing, f"the API reference (docs/api/) does not document: {missing}"
