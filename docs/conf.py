"""Sphinx configuration: the API reference from the docstrings, and the guide.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.  Nothing is fetched at build
time; MathJax loads from its CDN when a page is viewed.
"""

import os
import sys

from sphinx.ext.napoleon.docstring import GoogleDocstring

# The package is installed (pip install -e ".[docs]"); the path makes a plain checkout build too.
sys.path.insert(0, os.path.abspath(".."))

project = "mc-gradient-estimators"
author = "mc-gradient-estimators"
copyright = "%Y, mc-gradient-estimators"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' Google-style "Args:" and "References:" sections
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build"]
pygments_style = "sphinx"

toc_object_entries = False  # the tables of contents list sections, not every class

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures and docstrings say what each argument is
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = True
autodoc_default_options = {"exclude-members": "__init__, __new__"}

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False



def _attribute_docstring_as_prose(self):
    """An attribute's docstring (its ``#:`` comment) is prose, often "what it is: more"; napoleon would
    read the text before the first colon as the attribute's type."""
    return self._consume_to_end()


GoogleDocstring._parse_attribute_docstring = _attribute_docstring_as_prose

html_theme = "alabaster"
html_title = "mc-gradient-estimators"
html_theme_options = {
    "description": "Monte Carlo gradient estimators in JAX",
    "fixed_sidebar": True,
    "page_width": "1240px",
    "sidebar_width": "220px",
    "body_max_width": "none",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False
