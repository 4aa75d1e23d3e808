"""Generate exercises/ from solutions/: the student's copy, with the answers cut out.

    python -m grader.make_exercises            # (re)write exercises/
    python -m grader.make_exercises --check    # exit 1, listing stale files, if out of date (CI)

Every ``solutions/*.py`` is copied to ``exercises/`` with each region

    # BEGIN SOLUTION
    ...
    # END SOLUTION

(marker comments alone on their lines, inside a function body) replaced by one line,
``raise NotImplementedError("Exercise: implement <function> (see the docstring)")``, at the
region's indentation. Signatures, docstrings, imports and helper code outside the regions
are kept. A header comment marks the file as generated and as the student's to edit, and
records a digest of the generated text: the generator overwrites a file only while it still
matches that digest, so re-running it never destroys a student's work (``--force`` does).
Markdown files (``solutions/*.md``, the written derivations) are answers and are not copied.
``exercises/README.md`` is generated too.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import io
import re
import sys
import tokenize
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
BUGGY = "# BUGGY: "  # in a region: a line of the buggy code a bug-clinic exercise starts from
MARKER_LIKE = re.compile(r"(BEGIN|END)[ _-]*SOLUTION", re.IGNORECASE)
DIGEST_RE = re.compile(r"^# generated-digest: ([0-9a-f]{16})$", re.MULTILINE)
HEADER_LINES = 7  # lines of the header written by `header()`


class RegionError(ValueError):
    """A solutions file whose BEGIN/END SOLUTION regions cannot be turned into an exercise."""


# ----------------------------------------------------------------------------- one file


def _functions(tree: ast.AST) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function, classes as prefixes."""
    found = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                found.append((child.lineno, child.end_lineno, name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _marker_lines(source: str, filename: str) -> dict[int, str]:
    """{line: 'BEGIN' | 'END'} for marker comments; error on near-miss spellings."""
    markers = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise RegionError(f"{filename}: cannot tokenize: {exc}") from None
    lines = source.splitlines()
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        line_no, col = tok.start
        text = tok.string.rstrip()
        alone = lines[line_no - 1][:col].strip() == ""
        if text in (BEGIN, END) and alone:
            markers[line_no] = "BEGIN" if text == BEGIN else "END"
        elif MARKER_LIKE.search(text):
            raise RegionError(f"{filename}:{line_no}: {text!r} looks like a region marker; write exactly "
                              f"'{BEGIN}' or '{END}', alone on its line")
    return markers


def _check_imports(tree: ast.AST, filename: str) -> None:
    """An exercise file is a copy of its solution: importing solutions/ would leak the answers."""
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." if node.level else (node.module or "")]
        for name in names:
            if name == "." or name == "solutions" or name.startswith("solutions."):
                raise RegionError(f"{filename}:{node.lineno}: solutions must not import from solutions/ "
                                  "(the generated exercise would import the answers); import refimpl "
                                  "layers 1-2 or repeat the helper outside the regions")


def _strip(source: str, filename: str) -> tuple[str, list[str]]:
    """(exercise text, functions with a region) of one solutions file; see strip_solutions."""
    tree = _parse_solution(source, filename)
    _check_imports(tree, filename)
    lines, names = _replace_regions(source, filename, _marker_lines(source, filename), _functions(tree))
    return _exercise_text(lines, filename), list(dict.fromkeys(names))


def _parse_solution(source: str, filename: str) -> ast.Module:
    """The syntax tree of a solutions file; RegionError when it does not parse."""
    try:
        return ast.parse(source, filename)
    except SyntaxError as exc:
        raise RegionError(f"{filename}:{exc.lineno}: the solution does not parse: {exc.msg}") from None


def _enclosing_function(functions: list[tuple[int, int, str]], line_no: int, filename: str) -> str:
    """The name of the innermost function whose body holds the BEGIN marker of line line_no;
    RegionError when no function does."""
    inside = [f for f in functions if f[0] < line_no <= f[1]]
    if not inside:
        raise RegionError(f"{filename}:{line_no}: region is not inside a function body; "
                          "only code in a function can be replaced by `raise NotImplementedError`")
    return max(inside)[2]  # the innermost function


def _replace_regions(source: str, filename: str, markers: dict[int, str],
                     functions: list[tuple[int, int, str]]) -> tuple[list[str], list[str]]:
    """(the exercise's lines, the function of each region): each region replaced by its
    ``# BUGGY:`` lines as code, or by ``raise NotImplementedError``; RegionError for a nested
    region, an END without BEGIN or a BEGIN without END."""
    out: list[str] = []
    names: list[str] = []
    open_at = None  # line of the open BEGIN
    buggy: list[str] = []  # the region's "# BUGGY: code" lines, uncommented
    for line_no, line in enumerate(source.splitlines(keepends=True), start=1):
        kind = markers.get(line_no)
        if kind == "BEGIN":
            if open_at is not None:
                raise RegionError(f"{filename}:{line_no}: '{BEGIN}' inside the region opened at line "
                                  f"{open_at}; regions cannot nest (close it with '{END}' first)")
            name = _enclosing_function(functions, line_no, filename)
            names.append(name)
            indent = line[: len(line) - len(line.lstrip())]
            open_at, buggy = line_no, []
        elif kind == "END":
            if open_at is None:
                raise RegionError(f"{filename}:{line_no}: '{END}' without a matching '{BEGIN}' before it")
            out += buggy or [f'{indent}raise NotImplementedError("Exercise: implement {name} (see the docstring)")\n']
            open_at = None
        elif open_at is None:
            out.append(line)
        elif line.lstrip().startswith(BUGGY):
            buggy.append(indent + line.lstrip()[len(BUGGY):])
    if open_at is not None:
        raise RegionError(f"{filename}:{open_at}: '{BEGIN}' has no matching '{END}'")
    return out, names


def _exercise_text(lines: list[str], filename: str) -> str:
    """The exercise's lines as one text ending in a newline; RegionError when it does not parse."""
    text = "".join(lines)
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        ast.parse(text, filename)
    except SyntaxError as exc:
        raise RegionError(f"{filename}: the generated exercise does not parse (line {exc.lineno}: "
                          f"{exc.msg}); check the indentation of the regions") from None
    return text


def strip_solutions(source: str, filename: str = "<solution>") -> str:
    """The exercise text of one solutions file (without the header).

    Each region becomes ``raise NotImplementedError(...)``, or, in a bug-clinic region, the
    region's ``# BUGGY: <code>`` lines as code (the silent bug the student must find).
    Raises RegionError naming the file and line for a BEGIN without END, an END without
    BEGIN, nested regions, a region outside a function, or output that does not parse.
    """
    return _strip(source, filename)[0]


def regions_by_function(source: str, filename: str = "<solution>") -> list[str]:
    """Names of the functions a student must write (or fix) in one solutions file, in order."""
    return _strip(source, filename)[1]


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def header(source_name: str, topic: str, body: str) -> str:
    if "NotImplementedError(\"Exercise" not in body and topic != "__init__":  # a bug clinic
        middle = ["# This is YOUR file: each function has one silent bug; find it, fix it, then run",
                  f"# `python -m grader --only {topic}` from the repository root. (The generator will not",
                  "# overwrite a file you edited unless it is run with --force.)"]
    elif topic == "__init__":
        middle = ["# The package marker of exercises/: there is nothing to write in this file.",
                  "# The exercises are the other <topic>.py files here; see README.md.",
                  "#"]
    else:
        middle = ["# This is YOUR file: replace each `raise NotImplementedError(...)` with your code, then run",
                  f"# `python -m grader --only {topic}` from the repository root. (The generator will not",
                  "# overwrite a file you edited unless it is run with --force.)"]
    lines = ["# " + "-" * 94,
             f"# GENERATED by `python -m grader.make_exercises` from solutions/{source_name}.",
             *middle,
             f"# generated-digest: {_digest(body)}",
             "# " + "-" * 94]
    assert len(lines) == HEADER_LINES
    return "\n".join(lines) + "\n"


def make_exercise(source: str, source_name: str) -> str:
    body = strip_solutions(source, f"solutions/{source_name}")
    return header(source_name, Path(source_name).stem, body) + body


def is_untouched(text: str) -> bool:
    """True when a generated file still matches the digest in its header (no student edits)."""
    match = DIGEST_RE.search(text)
    if match is None:
        return False
    body = "".join(text.splitlines(keepends=True)[HEADER_LINES:])
    return _digest(body) == match.group(1)


# ----------------------------------------------------------------------------- README


# exercise -> (the notebook that teaches it and links here, what the bug clinic's bug is)
NOTEBOOK_LINKS = {
    "reinforce_loss": ("05_rl_with_verifiers", None),
    "rloo_baseline": ("05_rl_with_verifiers", None),
    "kl_penalized_rewards": ("04_grpo_vs_ppo", "the KL penalty has the wrong sign"),
    "group_mean_baseline": ("03a_grpo_in_one_hour",
                            "GRPO groups scrambled by reshaping in the wrong order"),
    "stable_k3": ("03b_grpo_under_the_microscope",
                  "k3 loses every digit to cancellation in float32 (exp(x) - 1)"),
    "whiten_kept": ("04_grpo_vs_ppo", "advantages normalised with the statistics of filtered completions"),
    "micro_batches_per_step": ("06_head_to_head", "a batch size counted in prompts, not completions"),
    "length_unbiased_loss": ("03b_grpo_under_the_microscope",
                             "a length-normalised loss that punishes long wrong answers less"),
}


DIAGNOSIS_SECTION = """
## Read the dashboard

`exercises/diagnosis.py` asks for no formula: `diagnose(dashboard)` gets the metrics of a
training run that went wrong and returns `(failure, remedy)`, one label from each closed list
(`FAILURES`, `REMEDIES`, at the top of the file). `notebooks/07_when_a_run_goes_wrong.ipynb`
teaches the failures; `exercises/diagnosis_runs/` holds unlabelled practice runs (`run_01.json`,
the dashboard, and `run_01.png`, its figure) to try your reader on. The grader checks it on the
notebook's cases (`python -m grader --only diagnose`); the autograder grades runs you have not
seen, each worth half for the right failure and half for the right remedy. A uniform random
guess scores 0.5/|FAILURES| + 0.5/|REMEDIES| per run; an answer outside the lists scores 0.
"""


HOW_TO_WORK = """## How to work

1. Open `exercises/<topic>.py` and replace each `raise NotImplementedError(...)` with your
   code. Keep the function names and signatures. You may use torch and `refimpl`'s basic
   layers (tokenizer, model, sampling, tasks, logprobs, rollouts), but not the very function
   the exercise asks you to write.
2. From the repository root, run the grader:

   ```bash
   python -m grader                    # every topic
   python -m grader --only logprobs    # one topic (file name) or one exercise (function name)
   python -m grader --show-output      # also show what your code printed
   ```

   From a notebook cell, `from grader import check; check("dpo_loss")` runs the same grading
   and prints the same table (the install command makes `grader` importable from anywhere);
   it returns the score, e.g. `.points`.

3. Read the table: one row per exercise with the checks passed, the points and the first
   failing check with a hint. Points are for right values: each exercise has *value* checks
   (its numbers, or its gradient, against the right ones) and *property* checks (detached,
   shape, dtype, inputs left unchanged, the right error, never raising; `--json` marks each
   check's `kind`). A value check that passes earns its share of the exercise's point; a
   property check earns its share only once every value check of the exercise passes, so a
   function that returns zeros of the right shape scores 0.00 however many property checks
   it passes. An exercise is complete at 1.00. The last line sums it up, e.g.
   `total: 3/7 exercises, 21/40 checks, 4.10/7 points`.
   A check that runs longer than 10 s fails with a time-out (`--timeout SECONDS` changes
   the limit); a crash in one exercise does not stop the others from being graded.

Regenerating this folder (`python -m grader.make_exercises`) does not overwrite a file you
have edited. The checks themselves are in `grader/checks/<topic>.py`.

"""


def readme(topics: dict[str, list[str]]) -> str:
    clinic = "\n".join(f"| `{fn}` | {NOTEBOOK_LINKS[fn][1]} | `notebooks/{NOTEBOOK_LINKS[fn][0]}.ipynb` | "
                       f"`python -m grader --only {fn}` |" for fn in topics.get("clinic", []) if fn in NOTEBOOK_LINKS)
    links = "\n".join(f"| `{fn}` | `notebooks/{nb}.ipynb` | `python -m grader --only {fn}` |"
                      for fn, (nb, bug) in NOTEBOOK_LINKS.items() if bug is None)
    diagnosis = DIAGNOSIS_SECTION if "diagnosis" in topics else ""
    rows = "\n".join(f"| `exercises/{t}.py` | {', '.join(f'`{f}`' for f in fns) or '(no code to write)'} | "
                     f"`python -m grader --only {t}` |" for t, fns in sorted(topics.items()) if t != "__init__")
    return f"""<!-- GENERATED by `python -m grader.make_exercises`; edit grader/make_exercises.py instead. -->
# Exercises

Each file here is a copy of a reference solution with the answers cut out: every function
body you must write raises `NotImplementedError`. The docstrings tell you the shapes, the
meaning of each argument and what to return.

{HOW_TO_WORK}## What to write

| file | functions | grade it with |
|---|---|---|
{rows}

## Bug clinic

`exercises/clinic.py` is different: its functions are complete, run, and return plausible
numbers, but each has one silent bug that real RL-for-LLM trainers have shipped. Read the
docstring, find the line that disagrees with it, and fix it. The checks pass only once the
bug is gone. The notebook that teaches each idea links to its exercise:

| exercise | the bug to find | taught in | grade it with |
|---|---|---|---|
{clinic}

The REINFORCE exercises are linked from the notebook that teaches them:

| exercise | taught in | grade it with |
|---|---|---|
{links}
{diagnosis}
## Written exercises

The derivations asked in the notebooks' "Exercises" sections (the DPO gradient, the zero
GRPO gradient on uniform groups, why online methods fix a failure mode absent from the
preference data) have worked answers in `solutions/*.md`. Write your own answer before
reading them.
"""


GENERIC = ("if ", "elif ", "else", "for ", "while ", "try", "except", "raise ", "return None", "pass")


def _without_comment(line: str) -> str:
    """One stripped line of code without its trailing comment (a "#" inside a string stays)."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return line[: tok.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # a line that opens a bracket or a string: no comment seen
        pass
    return line


TOKEN = re.compile(r"\w+|[^\w\s]")  # a word, or one punctuation mark: how a release is searched


def solution_lines(source: str) -> list[str]:
    """The telling code lines of a solutions file's regions, without their comments, to search
    a release for leaked answers. Left out: comment lines, control-flow boilerplate such as
    ``try:`` or an input check, and lines too short to tell anything (under 12 characters or
    5 tokens, such as ``d = dashboard``)."""
    lines, inside = [], False
    for line in source.splitlines():
        text = line.strip()
        if text in (BEGIN, END):
            inside = text == BEGIN
            continue
        code = _without_comment(text) if inside and not text.startswith("#") else ""
        if len(code) >= 12 and len(TOKEN.findall(code)) >= 5 and not code.startswith(GENERIC):
            lines.append(code)
    return lines


def student_readme() -> str:
    """README.md of a student release (``python -m grader release``)."""
    return """# Post-training exercises: DPO, GRPO and RL with verifiers

Open the notebooks in `notebooks/` in order; each ends with exercises that you write in
`exercises/<topic>.py` (see `exercises/README.md`) and grade with

```bash
pip install -r requirements.txt
python -m grader                     # every exercise
python -m grader --only dpo_loss     # one exercise, or one topic (a file name)
```

`refimpl/` is the small library the notebooks use. In this release the functions you are
asked to write call YOUR code in `exercises/`: until you have written an exercise, a notebook
cell that needs it stops with a message naming the file and the grader command.
"""


# ----------------------------------------------------------------------------- the folder


def expected_files(solutions: Path) -> dict[str, str]:
    """{file name in exercises/: content} for the current solutions/."""
    files: dict[str, str] = {}
    topics: dict[str, list[str]] = {}
    errors = []
    for path in sorted(solutions.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        try:
            files[path.name] = make_exercise(source, path.name)
            topics[path.stem] = regions_by_function(source, f"solutions/{path.name}")
        except RegionError as exc:
            errors.append(str(exc))
    if errors:
        raise RegionError("\n".join(errors))
    files["README.md"] = readme(topics)
    return files


def _generated_here(path: Path) -> bool:
    """Files this generator owns in exercises/: *.py and README.md."""
    return path.suffix == ".py" or path.name == "README.md"


def stale_files(solutions: Path, out: Path) -> list[str]:
    """Human-readable list of what differs between out/ and what would be generated."""
    expected = expected_files(solutions)
    stale = []
    for name, content in expected.items():
        target = out / name
        if not target.exists():
            stale.append(f"{out / name}: missing")
        elif target.read_text(encoding="utf-8") != content:
            stale.append(f"{out / name}: differs from what solutions/{name} generates")
    if out.is_dir():
        for path in sorted(out.iterdir()):
            if path.is_file() and _generated_here(path) and path.name not in expected:
                stale.append(f"{path}: has no solutions/{path.name} any more")
    return stale


def write_exercises(solutions: Path, out: Path, force: bool = False) -> tuple[list[str], list[str]]:
    """Write out/; returns (written files, refused files that a student edited)."""
    expected = expected_files(solutions)
    out.mkdir(parents=True, exist_ok=True)
    written, refused = [], []
    for name, content in expected.items():
        target = out / name
        if target.exists():
            current = target.read_text(encoding="utf-8")
            if current == content:
                continue
            if name.endswith(".py") and not force and not is_untouched(current):
                refused.append(str(target))
                continue
        target.write_text(content, encoding="utf-8")
        written.append(str(target))
    for path in sorted(out.iterdir()):
        if path.is_file() and path.suffix == ".py" and path.name not in expected:
            if force or is_untouched(path.read_text(encoding="utf-8")):
                path.unlink()
                written.append(f"{path} (removed: no solution any more)")
            else:
                refused.append(str(path))
    return written, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.make_exercises",
                                     description="Generate exercises/ from solutions/.")
    parser.add_argument("--check", action="store_true", help="exit 1 if exercises/ is out of date; write nothing")
    parser.add_argument("--force", action="store_true", help="overwrite files a student has edited")
    parser.add_argument("--solutions", default=str(REPO_ROOT / "solutions"), help="source folder (default: solutions)")
    parser.add_argument("--out", default=str(REPO_ROOT / "exercises"), help="output folder (default: exercises)")
    args = parser.parse_args(argv)
    solutions, out = Path(args.solutions), Path(args.out)
    if not solutions.is_dir():
        print(f"error: solutions folder {solutions} not found", file=sys.stderr)
        return 2
    try:
        if args.check:
            stale = stale_files(solutions, out)
            if stale:
                print(f"{out} is out of date with {solutions}; regenerate it with "
                      "`python -m grader.make_exercises`. Stale files:", file=sys.stderr)
                for line in stale:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"{out} is up to date with {solutions}")
            return 0
        written, refused = write_exercises(solutions, out, force=args.force)
    except RegionError as exc:
        print(f"error: malformed solution region(s):\n{exc}", file=sys.stderr)
        return 1
    for line in written:
        print(f"wrote {line}")
    if not written:
        print(f"{out} was already up to date")
    if refused:
        print("not overwritten because they were edited after generation (use --force to discard the edits):",
              file=sys.stderr)
        for line in refused:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
