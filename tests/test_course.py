"""A course a learner can finish: every notebook has the template's header and ending, the
README's study times are the notebooks' own, and the cheat sheet's defaults are refimpl's.

Per notebook (``notebooks/0*.ipynb``, in the course order below):

* the first cell is the header: "# NN · title", the question, "Study time: about N minutes",
  prerequisites, "You will be able to", and a Previous / Next line whose links are the
  neighbours in the course order (00 has no Previous, 08 no Next);
* the notebook ends with "## Check your understanding" (3-5 numbered questions, each answer
  folded in ``<details><summary>Answer</summary>``), then "## What to take away" (3-6
  bullets), then the Previous / Next line again as the last markdown line;
* no code cell shows an nbval comment (nbval reads cell tags, ``nbval-ignore-output``);
* no link to CURRICULUM.md or shared/EVIDENCE.md (docs/CLAIMS.md explains the evidence);
* at most 3,000 words of markdown prose (math, code blocks and HTML tags left out).

Each check is a function that returns the problems it finds, so the tests at the bottom can
show that it reports a broken notebook.
"""
import ast
import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import pytest

from refimpl.methods.dpo_trainer import DPOConfig
from refimpl.methods.grpo_trainer import GRPOConfig
from refimpl.methods.online_dpo import OnlineDPOConfig
from refimpl.methods.ppo_trainer import PPOConfig
from refimpl.methods.reinforce_trainer import ReinforceConfig

REPO = Path(__file__).resolve().parent.parent
COURSE = ["00_the_arena", "01_dpo_from_rlhf", "02_dpo_in_practice", "03a_grpo_in_one_hour",
          "03b_grpo_under_the_microscope", "04_grpo_vs_ppo", "05_rl_with_verifiers",
          "06_head_to_head", "07_when_a_run_goes_wrong", "08_graduate_to_trl"]
NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.ipynb"))
MAX_WORDS = 3000
CONFIGS = {c.__name__: c for c in (DPOConfig, OnlineDPOConfig, GRPOConfig, ReinforceConfig, PPOConfig)}
STUDY_TIME = re.compile(r"^> \*\*Study time:\*\* about (\d+) minutes \(the notebook itself executes "
                        r"in well under a minute\)\.$", re.M)
NAV_LINK = re.compile(r"(Previous|Next): \[[^\]]*\]\(([^)\s]+)\)")
ANSWER = "<details><summary>Answer</summary>"


def cells(path: Path) -> list[dict]:
    return [dict(c, source="".join(c["source"])) for c in json.loads(path.read_text())["cells"]]


def markdown(path: Path) -> list[str]:
    return [c["source"] for c in cells(path) if c["cell_type"] == "markdown"]


def nav_line(stem: str) -> str | None:
    """The expected links of ``stem``'s Previous / Next line, as the link targets in order."""
    i = COURSE.index(stem)
    return " · ".join(x for x in (f"Previous: {COURSE[i - 1]}.ipynb" if i > 0 else None,
                                  f"Next: {COURSE[i + 1]}.ipynb" if i + 1 < len(COURSE) else None) if x)


def nav_problems(line: str, stem: str, where: str) -> list[str]:
    """A Previous / Next line whose links are not the neighbours of ``stem`` in the course."""
    got = " · ".join(f"{kind}: {target}" for kind, target in NAV_LINK.findall(line))
    if got != nav_line(stem):
        return [f"{where} navigation {line!r}: expected the links {nav_line(stem)!r}"]
    return []


def header_problems(first: str, stem: str) -> list[str]:
    """What the first cell lacks of the template's header."""
    lines = first.splitlines()
    number = stem.split("_")[0]
    problems = [] if lines and re.match(rf"# {number} · \S", lines[0]) else [
        f"first line {lines[0] if lines else ''!r} is not '# {number} · <title>'"]
    for field in ("The question.", "Prerequisites:", "You will be able to:"):
        if not re.search(rf"^> \*\*{re.escape(field)}\*\* \S", first, re.M):
            problems.append(f"header has no '> **{field}** ...' line")
    if not STUDY_TIME.search(first):
        problems.append("header has no '> **Study time:** about N minutes (the notebook itself "
                        "executes in well under a minute).' line")
    nav = [line[2:] for line in lines if line.startswith("> ") and
           re.match(r"(Previous|Next): \[", line[2:])]
    if len(nav) != 1:
        return problems + ["header has no '> Previous: [..](..) · Next: [..](..)' line"]
    return problems + nav_problems(nav[0], stem, "header")


def section(texts: list[str], heading: str) -> str | None:
    """The text from the last ``heading`` line to the next level-2 heading or the end."""
    text = "\n\n".join(texts)
    starts = [m.end() for m in re.finditer(rf"^{re.escape(heading)}\s*$", text, re.M)]
    if not starts:
        return None
    rest = text[starts[-1]:]
    nxt = re.search(r"^## ", rest, re.M)
    return rest[:nxt.start()] if nxt else rest


def ending_problems(path_cells: list[dict], stem: str) -> list[str]:
    """What the notebook's end lacks: Check your understanding, What to take away, navigation."""
    texts = [c["source"] for c in path_cells if c["cell_type"] == "markdown"]
    problems = []
    check = section(texts, "## Check your understanding")
    take = section(texts, "## What to take away")
    if check is None or take is None:
        return ["no '## Check your understanding' and '## What to take away' sections"]
    joined = "\n\n".join(texts)
    if joined.rindex("## Check your understanding") > joined.rindex("## What to take away"):
        problems.append("'## What to take away' comes before '## Check your understanding'")
    questions = re.findall(r"^\d+\. \S", check, re.M)
    if not 3 <= len(questions) <= 5:
        problems.append(f"{len(questions)} questions in Check your understanding (3-5)")
    if check.count(ANSWER) != len(questions) or check.count("</details>") != len(questions):
        problems.append(f"{check.count(ANSWER)} folded answers ({ANSWER}...</details>) "
                        f"for {len(questions)} questions")
    body = take.strip().splitlines()
    bullets = [line for line in body if re.match(r"[*-] \S", line)]
    if not 3 <= len(bullets) <= 6:
        problems.append(f"{len(bullets)} bullets in What to take away (3-6)")
    if path_cells[-1]["cell_type"] != "markdown" or not body:
        return problems + ["the notebook does not end with a markdown navigation line"]
    last = path_cells[-1]["source"].strip().splitlines()[-1]
    return problems + nav_problems(last, stem, "last line")


def nbval_comment_problems(path_cells: list[dict]) -> list[str]:
    """Code lines that are nbval comments: nbval reads the cell tags instead."""
    return [f"cell {i}: {line.strip()!r}" for i, c in enumerate(path_cells) if c["cell_type"] == "code"
            for line in c["source"].splitlines()
            if line.strip().startswith("#") and "NBVAL_" in line.upper()]


def prose_words(text: str) -> int:
    """Words of markdown prose: display and inline math, fenced code and HTML tags left out."""
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", " ", text)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return len(re.findall(r"[A-Za-z0-9][\w'’\-]*", text))


def study_minutes(path: Path) -> int | None:
    m = STUDY_TIME.search(markdown(path)[0]) if markdown(path) else None
    return int(m.group(1)) if m else None


# --- the course ----------------------------------------------------------------------------

def test_the_notebooks_are_the_course():
    assert [p.stem for p in NOTEBOOKS if p.stem not in COURSE] == [], "a notebook outside the course order"
    assert [s for s in COURSE if not (REPO / "notebooks" / f"{s}.ipynb").is_file()] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_header_has_the_template_shape(path):
    assert path.stem in COURSE, path.name
    assert header_problems(markdown(path)[0], path.stem) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_with_questions_takeaways_and_navigation(path):
    assert path.stem in COURSE, path.name
    assert ending_problems(cells(path), path.stem) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_nbval_comment_in_code(path):
    assert nbval_comment_problems(cells(path)) == [], "use the cell tag nbval-ignore-output"


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"],
                         ids=lambda p: p.name)
def test_no_link_to_files_outside_the_repository(path):
    text = path.read_text()
    assert not re.search(r"CURRICULUM\.md|EVIDENCE\.md", text), \
        "link ../docs/CLAIMS.md (section 'How a verdict is decided') instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_stays_under_3000_words(path):
    words = sum(prose_words(t) for t in markdown(path))
    assert words <= MAX_WORDS, f"{words} words of markdown prose"


def readme_times() -> dict[str, int]:
    """{notebook stem: minutes} from the study-time column of README's notebook table."""
    rows = re.findall(r"^\| \w+ \| `(0\w+)` \|.*\| (\d+) min \|\s*$",
                      (REPO / "README.md").read_text(), re.M)
    return {stem: int(m) for stem, m in rows}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_readme_study_time_is_the_notebooks(path):
    assert readme_times().get(path.stem) == study_minutes(path) is not None, \
        f"README: {readme_times().get(path.stem)} min, header: {study_minutes(path)} min"


def test_readme_gives_the_course_order():
    order = " · ".join(s.split("_")[0] for s in COURSE)
    assert order in (REPO / "README.md").read_text()


# --- the cheat sheet -------------------------------------------------------------------------

def cheatsheet_values(kind: str) -> list[tuple[str, str, object]]:
    """(config class, field, value) of every ``**refimpl <kind>** (`XConfig`): `f=v`, ...`` line."""
    out = []
    for line in (REPO / "docs" / "CHEATSHEET.md").read_text().splitlines():
        m = re.search(rf"\*\*refimpl {kind}\*\* \(`(\w+)`\):(.*)", line)
        if m:
            out += [(m.group(1), f, ast.literal_eval(v)) for f, v in re.findall(r"`(\w+)=([^`]+)`", m.group(2))]
    return out


def test_cheatsheet_defaults_are_the_dataclass_defaults():
    found = cheatsheet_values("defaults")
    assert {cls for cls, _, _ in found} == set(CONFIGS) and len(found) >= 30
    defaults = {name: {f.name: f.default for f in dataclasses.fields(c)} for name, c in CONFIGS.items()}
    wrong = [(cls, f, v, defaults[cls].get(f, "no such field")) for cls, f, v in found
             if f not in defaults[cls] or defaults[cls][f] != v or type(defaults[cls][f]) is not type(v)]
    assert wrong == [], "docs/CHEATSHEET.md: (config, field, written, dataclass default)"


def test_cheatsheet_settings_are_valid_configs():
    for cls, f, _ in cheatsheet_values("settings"):
        assert f in {x.name for x in dataclasses.fields(CONFIGS[cls])}, (cls, f)
    for line in (REPO / "docs" / "CHEATSHEET.md").read_text().splitlines():
        m = re.search(r"\*\*refimpl settings\*\* \(`(\w+)`\):(.*)", line)
        if m:
            kw = {f: ast.literal_eval(v) for f, v in re.findall(r"`(\w+)=([^`]+)`", m.group(2))}
            CONFIGS[m.group(1)](**kw).validate()          # raises on a setting that is refused


def test_cheatsheet_covers_the_nine_methods():
    text = (REPO / "docs" / "CHEATSHEET.md").read_text()
    for method in ("DPO", "Online DPO", "DPO + NLL (RPO)", "GRPO", "Dr. GRPO", "DAPO", "REINFORCE",
                   "RLOO", "PPO"):
        body = section([text], f"## {method}")
        assert body is not None, method
        for part in ("**Loss**", "**Data", "**TRL**", "**Failure**", "**refimpl "):
            assert part in body, (method, part)


# --- the checks can fail ---------------------------------------------------------------------

GOOD_HEADER = """# 01 · A title

> **The question.** Why?
>
> **Study time:** about 40 minutes (the notebook itself executes in well under a minute).
> **Prerequisites:** none
> **You will be able to:** a thing
>
> Previous: [00 · The arena](00_the_arena.ipynb) · Next: [02 · x](02_dpo_in_practice.ipynb)"""
GOOD_END = [{"cell_type": "markdown", "source": "## Check your understanding\n\n" + "\n".join(
    f"{i}. Q?\n   {ANSWER}A.</details>" for i in (1, 2, 3))},
    {"cell_type": "markdown", "source": "## What to take away\n\n* a\n* b\n* c\n\n"
     "Previous: [00](00_the_arena.ipynb) · Next: [02](02_dpo_in_practice.ipynb)"}]


def test_header_check_reports_each_missing_part():
    assert header_problems(GOOD_HEADER, "01_dpo_from_rlhf") == []
    assert len(header_problems(GOOD_HEADER.replace("about 40 minutes", "40 min"), "01_dpo_from_rlhf")) == 1
    bad_nav = GOOD_HEADER.replace("02_dpo_in_practice", "03a_grpo_in_one_hour")
    assert "navigation" in header_problems(bad_nav, "01_dpo_from_rlhf")[0]
    assert len(header_problems(GOOD_HEADER, "02_dpo_in_practice")) == 2       # number and links
    first = GOOD_HEADER.replace("# 01", "# 00").replace("02_dpo_in_practice", "01_dpo_from_rlhf")
    assert len(header_problems(first, "00_the_arena")) == 1                   # 00 has no Previous
    first = first.replace("Previous: [00 · The arena](00_the_arena.ipynb) · ", "")
    assert header_problems(first, "00_the_arena") == []


def test_ending_check_reports_each_missing_part():
    assert ending_problems(GOOD_END, "01_dpo_from_rlhf") == []
    unfolded = [dict(GOOD_END[0], source=GOOD_END[0]["source"].replace(ANSWER, "", 1)), GOOD_END[1]]
    assert "folded answers" in ending_problems(unfolded, "01_dpo_from_rlhf")[0]
    assert "navigation" in ending_problems(GOOD_END, "02_dpo_in_practice")[0]
    assert ending_problems(GOOD_END[::-1], "01_dpo_from_rlhf") != []
    assert ending_problems(GOOD_END[:1], "01_dpo_from_rlhf") != []


def test_nbval_comments_and_words_are_counted():
    code = [{"cell_type": "code", "source": "# NBVAL_IGNORE_OUTPUT\nx = 1"}]
    assert nbval_comment_problems(code) and not nbval_comment_problems(
        [{"cell_type": "code", "source": "x = 1"}])
    assert prose_words("Two words $x^2 + y$ and\n$$\\sum_i a_i$$\n```\ncode here\n```") == 3


def test_notebook_times_table_and_selection():
    """benchmarks/notebook_times.py's table and notebook selection (nothing is executed here,
    and no time is asserted)."""
    spec = importlib.util.spec_from_file_location("notebook_times", REPO / "benchmarks" / "notebook_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    rows = [{"notebook": "00_the_arena", "seconds": 12.0, "code_cells": 7, "ok": True, "error": ""},
            {"notebook": "08_graduate_to_trl", "seconds": 75.5, "code_cells": 20, "ok": False,
             "error": "AssertionError"}]
    lines = times.table(rows).splitlines()
    assert lines[1].split() == ["00_the_arena", "12.0", "7", "ok"]
    assert lines[2].split() == ["08_graduate_to_trl", "75.5", "20", "ERR", "yes"]     # over 60 s
    assert lines[3].split() == ["total", "87.5"] and lines[4] == "08_graduate_to_trl: AssertionError"
    assert [p.stem for p in times.select(["00", "08"])] == ["00_the_arena", "08_graduate_to_trl"]
    with pytest.raises(SystemExit):
        times.select(["99"])
    assert "logical cores" in times.machine()
