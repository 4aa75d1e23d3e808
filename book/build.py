"""Build the course site: ``python -m book`` (from the repository root).

The site is made from what is committed, nothing is executed:

* the home page: the README (notebook map) followed by the claims table of docs/CLAIMS.md;
* one page per executed notebook in notebooks/ (widget outputs made static, see
  book/static_widgets.py; math laid out as JupyterLab reads it, see book/notebook_math.py;
  code cells tagged ``evidence`` folded in a closed ``<details>``, see ``fold_evidence``;
  the Markdown and math inside ``<details>`` blocks parsed, see book/notebook_details.py);
* on every page, a sidebar box linking the cheat sheet, the glossary and the notation
  (book/_templates/course-links.html);
* every page of docs/, the written solutions behind a spoiler warning, and an API reference
  generated from the docstrings of every refimpl module found at build time.

The sources are staged in ``<out>/src`` and Sphinx (myst-nb, the book theme) writes the HTML
to ``<out>/html``. MathJax comes from the npm registry (book/package.json, installed with
``npm ci`` on first use) and is copied into the site, which therefore loads nothing from the
network.
"""
from __future__ import annotations

import argparse
import pkgutil
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from book.notebook_details import open_details
from book.notebook_math import jupyter_math
from book.static_widgets import make_static

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
MATHJAX = BOOK / "node_modules" / "mathjax" / "es5"
SPOILER = ("::::{warning}\n**Spoilers.** These are the written solutions of the exercises. "
           "Try each exercise in its notebook first; the graded ones can be checked with "
           "`python -m grader`.\n::::\n")


def ensure_mathjax() -> Path:
    """The MathJax distribution, installed from the npm registry (pinned by book's lock file)."""
    if not (MATHJAX / "tex-svg.js").is_file():
        if shutil.which("npm") is None:
            raise RuntimeError("building the site needs npm (Node.js) to fetch MathJax from "
                               "the npm registry; install Node.js, or run `npm ci` in book/")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BOOK, check=True)
    return MATHJAX


def evidence_summary(markdown: str) -> str | None:
    """The text of the last ``<summary>`` of an evidence block in ``markdown``, tags removed
    ("Evidence for C12: the committed record, its grid and the decision"), or None."""
    found = [re.sub(r"<[^>]+>", "", m).strip() for m in
             re.findall(r"<summary>(.*?)</summary>", markdown, flags=re.S)]
    found = [f for f in found if f.lower().startswith("evidence")]
    return found[-1] if found else None


def fold_evidence(nb: nbformat.NotebookNode) -> int:
    """Render code cells tagged ``evidence`` folded: myst-nb's ``hide-cell`` puts the cell, code
    and output, in a closed ``<details>``; its summary line names the evidence block the cell
    belongs to (the last evidence ``<summary>`` of the markdown above it). Returns the count."""
    summary, count = None, 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            summary = evidence_summary(cell.source) or summary
        elif "evidence" in cell.metadata.get("tags", []):
            cell.metadata["tags"] = list(cell.metadata["tags"]) + ["hide-cell"]
            title = summary or "Evidence"
            cell.metadata["mystnb"] = {"code_prompt_show": f"{title} (show the code and its output)",
                                       "code_prompt_hide": f"{title} (hide)"}
            count += 1
    return count


def notebook_pages(src: Path) -> list[str]:
    """Copy each executed notebook with static widget outputs and folded evidence cells;
    returns the page names."""
    (src / "notebooks").mkdir()
    pages = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        make_static(nb, f"notebooks/{path.name}")
        fold_evidence(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = open_details(jupyter_math(cell.source))
        nbformat.write(nb, src / "notebooks" / path.name)
        pages.append(f"notebooks/{path.stem}")
    return pages


def home_page(pages: list[str]) -> str:
    """README (notebook names in its map turned into links) + the claims table + the toctrees."""
    readme = (ROOT / "README.md").read_text()
    for page in pages:
        stem = page.split("/")[1]
        readme = readme.replace(f"| `{stem}` |", f"| [`{stem}`]({page}.ipynb) |")
    docs = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    claims = ""
    if (ROOT / "docs" / "CLAIMS.md").is_file():
        claims = ("\n## The claims table\n\n```{include} docs/CLAIMS.md\n:start-line: 1\n"
                  ":relative-docs: docs/\n:relative-images:\n```\n")
    return (readme + claims
            + toctree("Notebooks", pages)
            + toctree("Notes", [f"docs/{d}" for d in docs])
            + toctree("Exercises", ["solutions/index"])
            + toctree("Library", ["api/index"]))


def toctree(caption: str, entries: list[str]) -> str:
    return "\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(entries) + "\n```\n"


def solution_pages(src: Path) -> None:
    """The written solutions, each page opening with the spoiler warning."""
    (src / "solutions").mkdir()
    names = []
    for path in sorted((ROOT / "solutions").glob("*.md")):
        text = jupyter_math(path.read_text())
        title, _, body = text.partition("\n")
        (src / "solutions" / path.name).write_text(f"{title}\n\n{SPOILER}\n{body}")
        names.append(path.stem)
    (src / "solutions" / "index.md").write_text(
        "# Written solutions\n\n" + SPOILER + toctree("Solutions", names).replace(":hidden:\n", ""))


def api_pages(src: Path) -> list[str]:
    """One autodoc page per refimpl module found now, and a summary table linking them."""
    import refimpl
    modules = [m.name for m in pkgutil.walk_packages(refimpl.__path__, "refimpl.")
               if not m.ispkg and not m.name.rsplit(".", 1)[1].startswith("_")]
    (src / "api").mkdir()
    for mod in modules:
        (src / "api" / f"{mod}.rst").write_text(
            f"{mod}\n{'=' * len(mod)}\n\n.. automodule:: {mod}\n   :members:\n"
            "   :show-inheritance:\n")
    (src / "api" / "index.rst").write_text(
        "API reference\n=============\n\nGenerated from the docstrings of the ``refimpl`` "
        "package (:mod:`refimpl`).\n\n.. automodule:: refimpl\n\n.. py:currentmodule:: None\n\n.. autosummary::\n\n"
        + "".join(f"   {m}\n" for m in modules)
        + "\n.. toctree::\n   :hidden:\n\n" + "".join(f"   {m}\n" for m in modules))
    return modules


def stage(src: Path) -> None:
    """Lay out every source page of the site under ``src`` (emptied first)."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    shutil.copytree(ROOT / "docs", src / "docs")
    pages = notebook_pages(src)
    solution_pages(src)
    api_pages(src)
    (src / "index.md").write_text(home_page(pages))


def build(out: Path) -> Path:
    """Stage the sources and build the HTML site; returns the folder holding index.html."""
    out = Path(out).resolve()
    ensure_mathjax()
    stage(out / "src")
    html = out / "html"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(BOOK),
           str(out / "src"), str(html)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return html


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m book", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(BOOK / "_build"),
                        help="output folder (the site goes to OUT/html); default book/_build")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    html = build(Path(args.out))
    pages = len(list(html.rglob("*.html")))
    print(f"site built in {time.perf_counter() - start:.1f} s: {pages} pages; "
          f"open {html / 'index.html'}")
