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


def rows():
    for line in DOC.read_text().splitlines():
        if re.match(r"\| C\d+ \|", line):
            cid, _, notebooks, _, measured = [c.strip() for c in line.strip().strip("|").split("|")]
            yield pytest.param(notebooks, measured, id=cid)


def test_figure_pattern_finds_the_figures():
    assert FIGURE.findall("0.31 at 50 pairs, ~1e-7, 4e-7 and 1.75x; C17, 2,560, 12 steps") == \
        ["0.31", "1e-7", "4e-7", "1.75"]


@pytest.mark.parametrize("notebooks, measured", list(rows()))
def test_claims_table_quotes_what_the_notebooks_print(notebooks, measured):
    sources = [p for n in re.findall(r"\b\d\d\b", notebooks) for p in REPO.glob(f"notebooks/{n}_*.ipynb")]
    assert sources, f"no notebook {notebooks}"
    printed = "\n".join(outputs_text(p) for p in sources) + DOC.read_text().split("<!-- study-records:begin -->")[-1]
    missing = [f for f in FIGURE.findall(measured) if f not in printed]
    assert not missing, f"docs/CLAIMS.md quotes {missing}, which notebook {notebooks} does not print"
