"""The code style of the library, the grader and the benchmarks: every function has at most
MAX_CODE_LINES code lines.

A function's code lines are the lines from its first statement after the docstring to its
last line that are neither blank nor a comment alone; a nested function's lines count in its
parent too. Split a longer function into helpers with names and docstrings that say what
they do.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("refimpl", "grader", "benchmarks")
MAX_CODE_LINES = 40


def python_files() -> list[Path]:
    """Every .py file of FOLDERS, caches left out."""
    return [p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))
            if "__pycache__" not in p.parts]


def code_lines(node: ast.FunctionDef, lines: list[str]) -> int:
    """The number of code lines of a function: its body after the docstring, without blank
    lines and lines that hold only a comment."""
    body = node.body[1:] if ast.get_docstring(node) else node.body
    if not body:
        return 0
    texts = (line.strip() for line in lines[body[0].lineno - 1:node.end_lineno])
    return sum(1 for text in texts if text and not text.startswith("#"))


def function_sizes(path: Path) -> list[tuple[str, int]]:
    """(name, code lines) of every function of a file, methods and nested functions included."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    return [(node.name, code_lines(node, lines)) for node in ast.walk(ast.parse(source, str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_the_counter_skips_docstrings_blank_lines_and_comments():
    source = ('def f(x):\n    """Doc\n    string."""\n    # a comment\n\n    y = x  # kept\n'
              '    def g():\n        return 1\n    return y\n')
    node = ast.parse(source).body[0]
    assert code_lines(node, source.splitlines()) == 4
    assert code_lines(ast.parse('def h():\n    """Only a docstring."""\n').body[0], []) == 0


def test_the_style_covers_the_library_the_grader_and_the_benchmarks():
    files = python_files()
    for folder in FOLDERS:
        assert any(p.relative_to(ROOT).parts[0] == folder for p in files), folder
    assert (ROOT / "grader" / "checks" / "dpo.py") in files  # subfolders too


def test_every_function_has_at_most_40_code_lines():
    offenders = [f"{path.relative_to(ROOT)}: {name} has {count} code lines"
                 for path in python_files() for name, count in function_sizes(path) if count > MAX_CODE_LINES]
    assert not offenders, (f"{len(offenders)} function(s) over {MAX_CODE_LINES} code lines; split them "
                           "into helpers:\n" + "\n".join(offenders))
