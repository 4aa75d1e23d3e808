"""Instructor commands: a student release and a Gradescope autograder bundle.

    python -m grader release OUT/ [--bundle BUNDLE/]   stubs, public checks, notebooks, refimpl;
                                                       no solutions/ (and the autograder bundle)
    python -m grader bundle OUT/     the release plus the hidden checks, setup.sh and run_autograder

Both grade solutions/ (full marks, hidden checks included, are required) and record every
expected value the checks ask for in ``OUT/grader/expected.json`` (grader/reference.py), so
that OUT/ can grade without the solutions; only the bundle's file holds the values of the
hidden checks. Before grading, both refuse to hand out an answer: if any line of a solution
region appears in the output (leaked_lines), they remove what they wrote and exit with an
error that lists each line and its file.

refimpl in the release: refimpl holds the course's own implementations of several graded
functions, which the notebooks call through the trainers. In OUT/refimpl/ the body of each of
these functions is replaced by the body of the function of the same name in
grader/delegates.py (real code that tests call), which calls the student's exercise through
``refimpl/_student.py`` (grader/student_calls.py, copied as it is), so the notebooks
run on the student's code, and an unwritten stub stops them with a message that names the
exercise file and the grader command. Options an exercise does not cover (IPO, label
smoothing, a KL term inside grpo_loss, ...) raise NotImplementedError there; the ungraded
baseline kinds and KL estimators keep their (short) course code.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import json
import shutil
import sys
import textwrap
from pathlib import Path

from grader import make_exercises, reference, runner, student_calls
from grader.delegates import DELEGATES

REPO_ROOT = Path(__file__).resolve().parent.parent
IMPORT = "from refimpl._student import beyond, student\n"


def _first_after_docstring(node: ast.FunctionDef) -> ast.stmt:
    """The first statement of a function's body after its docstring."""
    return node.body[1] if ast.get_docstring(node) and len(node.body) > 1 else node.body[0]


def delegate_body(fn) -> str:
    """The body of a grader/delegates.py function after its docstring, at column 0."""
    source = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(source).body[0]
    start = _first_after_docstring(node).lineno - 1
    return textwrap.dedent("".join(source.splitlines(keepends=True)[start:node.end_lineno]))


def replace_bodies(source: str, module: str) -> str:
    """The source of refimpl/<module>.py with the body of each function that grader/delegates.py
    replaces (DELEGATES) replaced by the delegate's body, which calls the student's exercise."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (module, node.name) in DELEGATES:
            first = _first_after_docstring(node)
            body = IMPORT + delegate_body(DELEGATES[(module, node.name)])
            edits.append((first.lineno - 1, node.end_lineno, "".join("    " + l if l.strip() else l
                                                                      for l in body.splitlines(keepends=True))))
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text]
    return "".join(lines)


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))


def build(outs: dict[str, Path]) -> list[str]:
    """Write {"release": folder, "bundle": folder} (either or both); returns notes for the instructor.

    Raises SystemExit, after removing what it wrote, when the output would hold a line of a
    solution region (leaked_lines) or when the solutions lose points."""
    for out in outs.values():
        if out.exists() and any(out.iterdir()):
            raise SystemExit(f"error: {out} exists and is not empty")
    fresh = {out for out in outs.values() if not out.exists()}
    for kind, out in outs.items():  # the files first: a leaked answer stops the build before the grading
        _write(out, kind == "bundle", {})
    leaks = [found for out in outs.values() for found in leaked_lines(out)]
    if leaks:
        _discard(outs, fresh)
        raise SystemExit(leak_report(leaks))
    reference.RECORDED.clear()
    if runner.main([str(REPO_ROOT / "solutions"), "--expect", "full", "--hidden"]) != 0:
        _discard(outs, fresh)
        raise SystemExit("error: the solutions do not get full marks; fix them before releasing")
    notes = []
    for kind, out in outs.items():
        bundle = kind == "bundle"
        values = {k: v for k, (v, hidden) in reference.RECORDED.items() if bundle or not hidden}
        _write_expected(out, values)
        notes.append(f"wrote {out} ({'autograder bundle' if bundle else 'student release'}), "
                     f"{len(values)} expected values")
    return notes


def _discard(outs: dict[str, Path], fresh: set[Path]) -> None:
    """Remove what build wrote: the folders' contents, and the folders it created."""
    for out in outs.values():
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        if out in fresh:
            out.rmdir()


def leak_report(leaks: list[tuple[str, str, Path]]) -> str:
    """The error message of a release that would hand out solution lines: each line and its file."""
    lines = [f"error: the output would hand out {len(leaks)} line(s) of solutions/, so nothing was written. "
             "Teach those steps without the graded function's code (call refimpl, or give the formula "
             "in markdown; see docs/GRADING.md), then build again:"]
    lines += [f"  {path}: a line of solutions/{name}: {line}" for name, line, path in leaks]
    return "\n".join(lines)


def _write_expected(out: Path, values: dict) -> None:
    (out / "grader" / "expected.json").write_text(json.dumps(values, sort_keys=True), encoding="utf-8")


def _write(out: Path, bundle: bool, values: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _copy_tree(REPO_ROOT / "grader", out / "grader")
    if not bundle:
        shutil.rmtree(out / "grader" / "checks_hidden", ignore_errors=True)
    _write_expected(out, values)
    make_exercises.write_exercises(REPO_ROOT / "solutions", out / "exercises", force=True)
    if (REPO_ROOT / "exercises" / "diagnosis_runs").is_dir():  # the unlabelled practice runs
        _copy_tree(REPO_ROOT / "exercises" / "diagnosis_runs", out / "exercises" / "diagnosis_runs")
    _copy_tree(REPO_ROOT / "refimpl", out / "refimpl")
    for path in sorted((out / "refimpl").rglob("*.py")):
        path.write_text(replace_bodies(path.read_text(encoding="utf-8"), path.stem), encoding="utf-8")
    (out / "refimpl" / "_student.py").write_text(inspect.getsource(student_calls), encoding="utf-8")
    if (REPO_ROOT / "notebooks").is_dir():
        _copy_tree(REPO_ROOT / "notebooks", out / "notebooks")
    for name in ("requirements.txt", "requirements-trl.txt", "pyproject.toml"):
        if (REPO_ROOT / name).is_file():
            shutil.copy(REPO_ROOT / name, out / name)
    (out / "README.md").write_text(make_exercises.student_readme(), encoding="utf-8")
    if bundle:
        _write_autograder(out)


def leaked_lines(folder: Path) -> list[tuple[str, str, Path]]:
    """(solutions file, line, file of folder) for every line of a solution region
    (make_exercises.solution_lines) that a text file of folder holds: the same tokens within one
    line, whatever the spacing and comments around them; in a notebook, its cell sources and
    text outputs. A line the generated exercise itself shows (a docstring that states the
    formula) is part of the question, not of the answer."""
    texts = {p: _lexed(_readable_text(p)) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.suffix in TEXT_SUFFIXES}
    found = []
    for sol in sorted((REPO_ROOT / "solutions").glob("*.py")):
        source = sol.read_text(encoding="utf-8")
        given = _lexed(make_exercises.strip_solutions(source, f"solutions/{sol.name}"))
        for line in make_exercises.solution_lines(source):
            needle = _lexed(line)
            if needle not in given:
                found += [(sol.name, line, p) for p, text in texts.items() if needle in text]
    return found


TEXT_SUFFIXES = (".py", ".md", ".ipynb", ".txt", ".json", ".toml", ".sh", ".cfg", ".html")


def _lexed(text: str) -> str:
    """Each line of text as its tokens (words and single punctuation marks) between single
    spaces, with a space at both ends: ``needle in haystack`` then matches whole tokens of one
    line, however the line was spaced."""
    return "\n".join(" " + " ".join(make_exercises.TOKEN.findall(line)) + " " for line in text.splitlines())


def _readable_text(path: Path) -> str:
    """A file's text; for a notebook, its cell sources and text outputs (not its images)."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".ipynb":
        return raw
    try:
        cells = json.loads(raw).get("cells", [])
    except (ValueError, AttributeError):
        return raw
    parts = []
    for cell in cells:
        parts.append(_joined(cell.get("source", "")))
        for out in cell.get("outputs", []):
            parts.append(_joined(out.get("text", "")))
            parts += [_joined(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def _joined(value) -> str:
    """A notebook's text field: one string, or a list of lines."""
    return value if isinstance(value, str) else "".join(value)


def _write_autograder(out: Path) -> None:
    (out / "setup.sh").write_text("#!/usr/bin/env bash\nset -e\ncd /autograder/source\n"
                                  "pip3 install -r requirements.txt\n", encoding="utf-8")
    (out / "run_autograder").write_text(
        "#!/usr/bin/env bash\n"
        "# Gradescope runs this as root; the student's code runs under an unprivileged uid.\n"
        "chmod -R go-rwx /autograder/source  # checks and expected values unreadable from the sandbox\n"
        "cd /autograder/source\n"
        "python3 -m grader /autograder/submission --hidden --gradescope /autograder/results/results.json\n",
        encoding="utf-8")
    for name in ("setup.sh", "run_autograder"):
        (out / name).chmod(0o755)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m grader {argv[0]}", description=__doc__.splitlines()[0])
    parser.add_argument("out", help="an empty or missing folder to write")
    if argv[0] == "release":
        parser.add_argument("--bundle", metavar="BUNDLE", default=None,
                            help="also write the autograder bundle here (one grading run for both)")
    args = parser.parse_args(argv[1:])
    outs = {argv[0]: Path(args.out)}
    if getattr(args, "bundle", None):
        outs["bundle"] = Path(args.bundle)
    for note in build(outs):
        print(note, file=sys.stderr)
    return 0
