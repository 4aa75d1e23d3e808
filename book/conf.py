"""Sphinx configuration of the course site (built by ``python -m book``, see book/build.py)."""
import importlib.util
import re
import shutil
from pathlib import Path

BOOK = Path(__file__).resolve().parent

project = "DPO vs GRPO vs RL with verifier rewards"
author = "the curriculum's authors"
copyright = "the curriculum's authors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Notebooks are shown as committed: executed, never re-run.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# MathJax from the npm package (book/package.json), copied into _static/mathjax below.
# SVG output draws glyphs as paths, so no web font has to load (fonts from file:// are
# cross-origin to the browser).
mathjax_path = "mathjax/tex-svg.js"

# The API reference imports every refimpl module; optional dependencies absent here are mocked.
autodoc_mock_imports = [m for m in ("trl", "transformers", "accelerate", "datasets")
                        if importlib.util.find_spec(m) is None]
autodoc_member_order = "bysource"
autosummary_generate = False

html_theme = "sphinx_book_theme"
# Every page's sidebar: the theme's items and, under the logo, the three pages to keep at hand.
templates_path = ["_templates"]
html_sidebars = {"**": ["navbar-logo.html", "course-links.html", "icon-links.html",
                        "search-button-field.html", "sbt-sidebar-nav.html"]}
html_title = "Post-training: DPO, GRPO and RL with verifiers"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
}
# A fixed first-visit colour mode (the theme reports an empty stored mode as an error).
html_context = {"default_mode": "light"}


def copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        shutil.copytree(BOOK / "node_modules" / "mathjax" / "es5",
                        Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def plain_docstring(app, what, name, obj, options, lines):
    """refimpl's docstrings are plain text (equations in ASCII, aligned by spaces): keep the
    summary line as a paragraph and show the rest verbatim, as it reads in the source."""
    body = lines[1:]
    while body and not body[0].strip():
        body.pop(0)
    summary = re.sub(r"([*|\\])", r"\\\1", lines[0]) if lines else ""
    lines[:] = [summary] + (["", "::", ""] + ["   " + line for line in body] + [""] if body else [])


def setup(app):
    app.connect("autodoc-process-docstring", plain_docstring)
    app.connect("build-finished", copy_mathjax)
