"""The notebooks never disagree with the study records (shared/EVIDENCE.md sec. 5-6).

Every verdict headline a notebook's markdown writes for a claim with a record,

    **C17 · article: nuanced · our test: holds with a caveat.**

must carry the record's two verdicts, and every record decided under the two-verdict rule has
such a headline in at least one notebook (06's "When to use each" table included).
"""
import json
import re
from pathlib import Path

import pytest

from refimpl.experiments.claims_study import study

REPO = Path(__file__).resolve().parent.parent
HEADLINE = re.compile(r"\*\*(C\d+[a-z]?) · article: (supported|refuted|nuanced) · our test: "
                      r"(holds with a caveat|holds|not shown|contradicted)\.?\*\*")
# the short form of 06's "When to use each" table: "C10: nuanced · holds"
SHORT = re.compile(r"\b(C\d+[a-z]?): (supported|refuted|nuanced) · "
                   r"(holds with a caveat|holds|not shown|contradicted)\b")


def headlines(text: str) -> list:
    """(claim id, article verdict, test verdict) of every headline in ``text``."""
    return HEADLINE.findall(text)


def short_forms(text: str) -> list:
    """The same, for every "Cn: article · test" of a table in ``text``."""
    return SHORT.findall(text)


def notebook_markdown() -> dict:
    """{notebook name: its markdown cells' text}."""
    return {p.name: "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                              if c["cell_type"] == "markdown")
            for p in sorted((REPO / "notebooks").glob("*.ipynb"))}


RECORDS = {r["id"]: r for r in study.load_records() if r.get("version", 1) >= 2}


def test_the_pattern_reads_a_headline_and_rejects_other_words():
    assert headlines("x **C12b · article: nuanced · our test: not shown.** y") == [
        ("C12b", "nuanced", "not shown")]
    assert headlines("**C3 · article: mostly · our test: holds.**") == []
    assert short_forms("| C4a: supported · holds; C19: nuanced · holds with a caveat |") == [
        ("C4a", "supported", "holds"), ("C19", "nuanced", "holds with a caveat")]


def test_06_table_gives_both_lines_of_its_record_backed_rows():
    table = notebook_markdown()["06_head_to_head.ipynb"]
    assert {cid for cid, _, _ in short_forms(table)} >= {"C4a", "C10", "C17", "C19"}


@pytest.mark.parametrize("name", sorted(notebook_markdown()))
def test_every_headline_matches_its_record(name):
    text = notebook_markdown()[name]
    for cid, article, test in headlines(text) + short_forms(text):
        if cid in RECORDS:
            rec = RECORDS[cid]
            assert (article, test) == (rec["article_verdict"], rec["test_verdict"]), (name, cid)


@pytest.mark.parametrize("cid", sorted(RECORDS))
def test_every_two_verdict_record_has_a_headline(cid):
    found = [(n, h) for n, text in notebook_markdown().items() for h in headlines(text) if h[0] == cid]
    assert found, f"no notebook writes the verdicts of {cid}'s record as a headline"
