"""docs/CLAIMS.md quotes only figures that the executed notebooks print.

Each row of the claims table names its notebook(s); every decimal figure in its "what was
measured" column (0.465, 4e-7, 1.75x, ...) must appear in the stored outputs of those notebooks
(or, for a row backed by a study record, in the record's generated section). A figure that a
notebook no longer prints fails here, so the table cannot drift from what a learner sees.
"""
import json
import re
from pathlib import Path

import pytest

from refimpl.experiments.claims_study.study_report import BEGIN, END

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "CLAIMS.md"
FIGURE = re.compile(r"(?<![\w.])\d*\.\d+(?:e-?\d+)?(?![\d])|(?<![\w.])\d+e-\d+")


def outputs_text(path: Path) -> str:
    parts = []
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            parts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def rows(text: str) -> list:
    """(claim id, notebooks, measured) of each row of the claims table in ``text``."""
    out = []
    for line in text.splitlines():
        if re.match(r"\| C\d+ \|", line):
            cid, _, notebooks, _, measured = [c.strip() for c in line.strip().strip("|").split("|")]
            out.append((cid, notebooks, measured))
    return out


def generated_section(text: str) -> str:
    """The study records' generated section of ``text``, between its two markers; a doc
    without them is an error (the table's figures would have nothing to be checked against)."""
    assert BEGIN in text and END in text, f"docs/CLAIMS.md lost its {BEGIN} ... {END} section"
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert not rows(section), "the generated section holds rows of the claims table"
    return section


def missing_figures(notebooks: str, measured: str, text: str) -> list:
    """The figures of ``measured`` that neither the notebooks' stored outputs nor the generated
    section of ``text`` print."""
    sources = [p for n in re.findall(r"\b\d\d[a-z]?\b", notebooks)        # "03a" names notebooks/03a_*
               for p in REPO.glob(f"notebooks/{n}_*.ipynb")]
    assert sources, f"no notebook {notebooks}"
    printed = "\n".join(outputs_text(p) for p in sources) + generated_section(text)
    return [f for f in FIGURE.findall(measured) if f not in printed]


def test_figure_pattern_finds_the_figures():
    assert FIGURE.findall("0.31 at 50 pairs, ~1e-7, 4e-7 and 1.75x; C17, 2,560, 12 steps") == \
        ["0.31", "1e-7", "4e-7", "1.75"]


def test_the_table_has_rows_with_figures_to_check():
    """The parametrised test below checks something: the table has its rows and figures."""
    table = rows(DOC.read_text())
    assert len(table) >= 10, "the claims table of docs/CLAIMS.md has lost its rows"
    assert sum(bool(FIGURE.findall(measured)) for _, _, measured in table) >= 10


def test_a_figure_nothing_prints_is_reported_and_a_lost_marker_fails():
    """The check can fail: a figure that nothing prints is reported, and a doc without its
    generated section is an error rather than a pass against the whole doc."""
    text = DOC.read_text()
    cid, notebooks, measured = rows(text)[0]
    assert missing_figures(notebooks, measured + " and 0.123456789", text) == ["0.123456789"]
    with pytest.raises(AssertionError, match="lost its"):
        missing_figures(notebooks, measured, text.replace(BEGIN, ""))


@pytest.mark.parametrize("cid, notebooks, measured", rows(DOC.read_text()))
def test_claims_table_quotes_what_the_notebooks_print(cid, notebooks, measured):
    """Every figure of the row is printed by its notebooks or by its study record's section."""
    missing = missing_figures(notebooks, measured, DOC.read_text())
    assert not missing, f"docs/CLAIMS.md quotes {missing}, which notebook {notebooks} does not print"
