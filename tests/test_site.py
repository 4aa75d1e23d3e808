"""The course site (book/): static widget outputs, the build, and every page in headless Chromium.

The browser test opens each built page from the file system with every off-machine request
blocked, and checks: no console or page errors, no request that would leave the machine, no
formula left as raw TeX and no MathJax error, every image loaded, every internal link (and
its #fragment) resolves, every page links the cheat sheet, the glossary and the notation, every
<details> of the content is closed on load, and every code cell tagged "evidence" sits folded
in a closed <details> with a summary line. It saves screenshots of the home page and of one notebook page to
$SITE_SCREENSHOTS (default: a temporary folder); `SITE_SCREENSHOTS=docs` regenerates the
picture shown in the README.
"""
from __future__ import annotations

import importlib.util
import os
import pkgutil
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from browser_support import chromium_page

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from book.static_widgets import STATE_MIME, VIEW_MIME, make_static  # noqa: E402

SITE_TOOLS = ("sphinx", "myst_nb", "sphinx_book_theme")
SHOT_PAGE = "notebooks/01_dpo_from_rlhf.html"

# Text nodes outside code, scripts and typeset math, for the raw-TeX check.
VISIBLE_TEXT_JS = """() => {
  const skip = new Set(['PRE', 'CODE', 'SCRIPT', 'STYLE', 'TEXTAREA', 'MJX-CONTAINER', 'KBD']);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    let p = n.parentElement, hidden = false;
    for (; p; p = p.parentElement) if (skip.has(p.tagName)) { hidden = true; break; }
    if (!hidden) out.push(n.textContent);
  }
  return out.join(' ');
}"""
IMAGES_JS = """async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) img.loading = 'eager';
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  return imgs.map(img => [img.currentSrc || img.src, img.naturalWidth]);
}"""
MATH_JS = """async () => {
  if (!window.MathJax || !MathJax.startup) return [false, 0, 0];
  await MathJax.startup.promise;
  return [true, document.querySelectorAll('mjx-container').length,
          document.querySelectorAll('[data-mjx-error], mjx-merror').length];
}"""
# Scroll so that the first interactive cell's stored figure and its note are in view.
SHOW_INTERACTIVE_JS = """() => {
  const note = Array.from(document.querySelectorAll('.admonition.note'))
      .find(n => n.textContent.includes('Interactive cell'));
  if (note) note.scrollIntoView({block: 'end'});
  window.scrollBy(0, 40);
}"""
RAW_TEX = ("$", "\\(", "\\)", "\\[", "\\]", "\\begin{")
# The folds of the page's content (the sidebar's navigation has its own): every <details> of
# the article, how many are open, and for each code cell tagged "evidence" whether it sits in
# a closed <details> with a non-empty summary and its code is not displayed.
FOLDS_JS = """() => {
  const article = document.querySelector('.bd-article') || document.body;
  const details = Array.from(article.querySelectorAll('details'));
  const cells = Array.from(article.querySelectorAll('.cell.tag_evidence'));
  const folded = cells.filter(c => {
    const d = c.querySelector('details') || c.closest('details');
    const s = d && d.querySelector('summary');
    const pre = c.querySelector('pre');
    return d && !d.open && s && s.textContent.trim().length > 0 && pre && !pre.checkVisibility();
  });
  return [details.length, details.filter(d => d.open).length, cells.length, folded.length];
}"""
AT_HAND = ("CHEATSHEET", "GLOSSARY", "NOTATION")    # linked from every page (book/_templates)


# --- static widgets (no site tools needed) -------------------------------------------------

def _model(name, **state):
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def _widget_notebook():
    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    state = {
        "box": _model("VBoxModel", children=["IPY_MODEL_s", "IPY_MODEL_o"]),
        "s": _model("FloatLogSliderModel", description="beta", value=0.5),
        "o": _model("OutputModel", outputs=[{"output_type": "display_data", "data": png,
                                             "metadata": {}}]),
        "bar": _model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]),
        "l": _model("HTMLModel", value="SFT:&nbsp;50%"),
        "p": _model("FloatProgressModel", value=5.0, min=0.0, max=10.0),
        "r": _model("HTMLModel", value=" 5/10 [00:01&lt;00:01]"),
    }

    def view(model_id):
        return nbformat.v4.new_output("display_data", data={
            VIEW_MIME: {"model_id": model_id, "version_major": 2, "version_minor": 0},
            "text/plain": "interactive(...)"})
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("interact(...)", outputs=[view("box")]),
                nbformat.v4.new_code_cell("train()", outputs=[view("bar")]),
                nbformat.v4.new_code_cell("lost()", outputs=[view("gone")])]
    nb.metadata["widgets"] = {STATE_MIME: {"state": state, "version_major": 2}}
    return nb


def test_evidence_cells_are_marked_to_fold_under_their_block_summary():
    from book.build import fold_evidence
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("<details><summary><b>Evidence for C12</b>: the "
                                              "record</summary>\n\ntext\n\n</details>"),
                nbformat.v4.new_code_cell("assert x", metadata={"tags": ["evidence"]}),
                nbformat.v4.new_code_cell("print(1)"),
                nbformat.v4.new_markdown_cell("<details><summary>Answer</summary>no</details>"),
                nbformat.v4.new_code_cell("y", metadata={"tags": ["evidence", "nbval-ignore-output"]})]
    assert fold_evidence(nb) == 2
    first, plain, _, last = nb.cells[1], nb.cells[2], nb.cells[3], nb.cells[4]
    assert first.metadata["tags"] == ["evidence", "hide-cell"]
    assert first.metadata["mystnb"]["code_prompt_show"].startswith("Evidence for C12: the record")
    assert "hide-cell" not in plain.metadata.get("tags", [])     # only tagged cells fold
    assert "hide-cell" in last.metadata["tags"]                  # an "Answer" is not a block title
    assert last.metadata["mystnb"]["code_prompt_show"].startswith("Evidence for C12")


def test_details_bodies_are_set_off_to_parse_as_markdown():
    from book.notebook_details import open_details
    src = ("1. Why?\n   <details><summary>Answer</summary>Because $r_i$ is\n   **one**.</details>\n"
           "2. Then? `<details><summary>Answer</summary>$x$</details>` stays code.\n\n"
           "```\n<details><summary>Answer</summary>$y$</details>\n```")
    out = open_details(src)
    assert out.startswith("1. Why?\n   <details><summary>Answer</summary>\n\n   Because $r_i$ is\n"
                          "   **one**.\n\n   </details>\n\n2. Then?")      # in the list item, then a blank
    assert out.endswith("`<details><summary>Answer</summary>$x$</details>` stays code.\n\n"
                        "```\n<details><summary>Answer</summary>$y$</details>\n```")
    assert open_details(out) == out                                            # already open: unchanged


def test_static_widgets_show_stored_figure_progress_text_and_note():
    nb = _widget_notebook()
    assert make_static(nb, "notebooks/x.ipynb") == 1
    assert "widgets" not in nb.metadata
    interact, note, bar, lost = nb.cells
    assert [o["data"]["image/png"] for o in interact.outputs] == ["iVBORw0KGgo="]
    assert note.cell_type == "markdown" and "`beta` = 0.5" in note.source
    assert "notebooks/x.ipynb" in note.source and "JupyterLab" in note.source
    assert bar.outputs[0]["text"] == "SFT:\xa050%|" + "\u2588" * 10 + " " * 10 + "| 5/10 [00:01<00:01]\n"
    assert lost.outputs[0]["data"] == {"text/plain": "interactive(...)"}
    nbformat.validate(nb)


# --- the built site -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [m for m in SITE_TOOLS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"site tools not installed ({', '.join(missing)}): "
                    "pip install -r requirements-site.txt")
    if shutil.which("npm") is None and not (ROOT / "book/node_modules/mathjax").is_dir():
        pytest.skip("npm is needed once to fetch MathJax for the site (install Node.js)")
    from book.build import build
    return build(tmp_path_factory.mktemp("site"))


def test_site_has_a_page_per_notebook_module_and_solution(site):
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "notebooks" / f"{nb.stem}.html").is_file(), nb.name
    import refimpl
    for m in pkgutil.walk_packages(refimpl.__path__, "refimpl."):
        if not m.ispkg and not m.name.rsplit(".", 1)[1].startswith("_"):
            assert (site / "api" / f"{m.name}.html").is_file(), m.name
    for sol in (ROOT / "solutions").glob("*.md"):
        assert "Spoilers" in (site / "solutions" / f"{sol.stem}.html").read_text(), sol.name
    assert (site / "_static/mathjax/tex-svg.js").is_file()
    for doc in AT_HAND:
        assert (site / "docs" / f"{doc}.html").is_file(), doc


def site_pages(site: Path) -> list[Path]:
    """Every HTML page of the site (not the theme's template fragments under _static/)."""
    return sorted(p for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "_static")


def _check_page(page, url: str) -> tuple[list[str], int, list[str], set[str]]:
    """(problems, formulas, links, ids) of one loaded page. Problems include a link missing to
    one of the pages kept at hand, an open fold in the content, and a cell tagged "evidence"
    that is not folded (a closed <details> with a summary, its code not displayed)."""
    problems = []
    page.goto(url, wait_until="load")
    has_mathjax, formulas, errors = page.evaluate(MATH_JS)
    if errors:
        problems.append(f"{errors} MathJax errors")
    text = page.evaluate(VISIBLE_TEXT_JS)
    problems += [f"raw TeX {tok!r} near {text[text.index(tok) - 40:text.index(tok) + 40]!r}"
                 for tok in RAW_TEX if tok in text]
    problems += [f"image not loaded: {src}" for src, width in page.evaluate(IMAGES_JS)
                 if not width]
    links = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    ids = set(page.eval_on_selector_all("[id], a[name]", "es => es.map(e => e.id || e.name)"))
    problems += [f"no link to docs/{doc}.html" for doc in AT_HAND
                 if not any(unquote(urlparse(h).path).endswith(f"/docs/{doc}.html") for h in links)]
    n_details, n_open, n_evidence, n_folded = page.evaluate(FOLDS_JS)
    if n_open:
        problems.append(f"{n_open} of {n_details} <details> open on load")
    if n_folded != n_evidence:
        problems.append(f"{n_evidence - n_folded} of {n_evidence} evidence cells not folded")
    return problems, formulas, links, ids


def _broken_links(site: Path, links: dict[str, list[str]], ids: dict[Path, set[str]]):
    """Internal links whose file is missing, or whose #fragment names no element there."""
    broken = []
    for page, hrefs in links.items():
        for href in hrefs:
            url = urlparse(href)
            if url.scheme != "file":
                continue
            target = Path(unquote(url.path))
            if target.is_dir():
                target = target / "index.html"
            if not target.exists() or site not in target.parents:
                broken.append(f"{page} -> {href}")
            elif url.fragment and target in ids and unquote(url.fragment) not in ids[target]:
                broken.append(f"{page} -> {href} (no such anchor)")
    return broken


def test_every_page_renders_offline_in_chromium(site, tmp_path):
    shots = Path(os.environ.get("SITE_SCREENSHOTS") or tmp_path)
    pages = site_pages(site)
    problems, links, ids, formulas = [], {}, {}, 0
    with chromium_page() as (page, browser_problems):
        for path in pages:
            name = str(path.relative_to(site))
            found, n, links[name], ids[path] = _check_page(page, path.as_uri())
            formulas += n
            problems += [f"{name}: {p}" for p in found + browser_problems]
            browser_problems.clear()
            if name in ("index.html", SHOT_PAGE):
                shots.mkdir(parents=True, exist_ok=True)
                out = shots / ("site-home.png" if name == "index.html" else "site-notebook.png")
                page.evaluate(SHOW_INTERACTIVE_JS)
                page.screenshot(path=str(out))
    problems += _broken_links(site, links, ids)
    with chromium_page() as (page, _):                 # the checks above had something to check
        page.goto((site / "notebooks" / "08_graduate_to_trl.html").as_uri(), wait_until="load")
        n_details, _, n_evidence, n_folded = page.evaluate(FOLDS_JS)
    assert n_evidence > 0 and n_folded == n_evidence and n_details > n_evidence
    print(f"\nsite check: {len(pages)} pages, {formulas} formulas typeset, "
          f"{sum(map(len, links.values()))} links; screenshots in {shots}")
    assert not problems, "\n".join(problems[:50])
    assert formulas > 0 and (shots / "site-home.png").is_file()


def test_checker_reports_network_raw_tex_broken_images_and_links(tmp_path):
    """The page check itself fails on each kind of fault it is meant to catch."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        '<html><body><p>left raw: $x^2$</p><img src="missing.png">'
        '<a href="gone.html">x</a><a href="#nowhere">y</a><span id="here"></span>'
        '<a href="docs/GLOSSARY.html">g</a><details open><summary>Answer</summary>a</details>'
        '<div class="cell tag_evidence"><pre>assert x</pre></div>'
        '<script src="https://cdn.invalid/mathjax.js"></script>'
        '<script>console.error("boom")</script></body></html>')
    with chromium_page() as (page, browser_problems):
        found, formulas, links, ids = _check_page(page, page_file.as_uri())
    broken = _broken_links(tmp_path, {"bad.html": links}, {page_file: ids})
    assert formulas == 0 and "here" in ids
    assert any(p.startswith("raw TeX '$'") for p in found)
    assert any(p.startswith("image not loaded") for p in found)
    assert "no link to docs/CHEATSHEET.html" in found and "no link to docs/GLOSSARY.html" not in found
    assert "1 of 1 <details> open on load" in found and "1 of 1 evidence cells not folded" in found
    assert any("network: https://cdn.invalid/mathjax.js" == p for p in browser_problems)
    assert any("console error: boom" in p for p in browser_problems)
    assert sorted(b.split(" -> ")[1].rsplit("/", 1)[1] for b in broken) == \
        ["GLOSSARY.html", "bad.html#nowhere (no such anchor)", "gone.html"]
