"""Grade student modules against the checks in grader/checks/.

    python -m grader [PATH] [--only NAME ...] [--timeout SECONDS] [--json] [--expect full|zero]
                     [--hidden] [--gradescope RESULTS_JSON] [--memory-mb MB]
    python -m grader release OUT/      a student folder (grader/release.py, via grader/__main__.py)
    python -m grader bundle OUT/       a Gradescope autograder folder, with the hidden checks

PATH is a folder (default ``exercises``) holding ``<topic>.py`` files, or one ``.py`` file
(its topic is its file name, or ``--topic``). Every ``grader/checks/<topic>.py`` defines
``EXERCISES = {"exercise_name": [check_fn, ...]}`` and grades ``PATH/<topic>.py``;
``grader/checks_hidden/<topic>.py`` adds checks with ``--hidden`` (the autograder bundle).

Trust: this process imports the checks and never the student's code. Each topic gets a
sandbox (grader/sandbox.py): a child process in a temporary copy that imports the student's
module and answers calls with plain data; the checks here compute every expected value and
every comparison. Each check has a wall-time limit (``--timeout``, default 10 s); a child that
hangs, dies or breaks the channel fails the check it was running, the rest of that exercise is
marked not run, and a fresh child carries on with the next exercise.

Score (grader/report.py): an exercise earns its value checks passed plus, once every value
check passes, its property checks passed (``grader.checks.property_check``), over its number
of checks; it is complete when all pass. The exit code is 0 for any grading run, unless
``--expect`` is given (for CI): ``--expect full`` exits 1 if any check fails (run it on
solutions/), ``--expect zero`` exits 1 if any check passes (run it on the untouched,
generated exercises/).

From Python (a notebook cell): ``grader.check("dpo_loss")`` grades like ``--only dpo_loss``,
prints the same report and returns a :class:`grader.report.Grade` (see :func:`check`).
"""
from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from grader import reference
from grader.report import (KINDS, VALUE, CheckResult, ExerciseResult, Grade, TopicResult, format_table,
                           gradescope_results, shorten, totals)
from grader.sandbox import Sandbox, StudentError, StudentModule, StudentProcessDied, harden_parent

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKS_DIR = Path(__file__).resolve().parent / "checks"
HIDDEN_CHECKS_DIR = Path(__file__).resolve().parent / "checks_hidden"
MAX_MESSAGE = 2000  # characters kept of one failure message
CHECK_BUDGET = 5  # a check may take this many --timeout in all


# ----------------------------------------------------------------------------- discovery


@dataclass
class Topic:
    name: str
    checks_file: Path
    checks_module: str | None  # importable name when the checks live in grader/checks


def discover_topics(checks_dir: Path) -> list[Topic]:
    """Every ``<topic>.py`` in checks_dir except ``__init__.py`` and ``_private.py`` files."""
    in_package = checks_dir.resolve() == DEFAULT_CHECKS_DIR
    topics = []
    for path in sorted(checks_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = f"grader.checks.{path.stem}" if in_package else None
        topics.append(Topic(path.stem, path.resolve(), module))
    return topics


def static_plan(checks_file: Path) -> list[tuple[str, list[str]]] | None:
    """Exercise and check names read from a literal ``EXERCISES = {...}`` without importing.

    Used to resolve ``--only`` and to report a topic whose worker never got going. Returns
    None when EXERCISES is not a plain dict literal (the worker's plan is then authoritative).
    """
    try:
        tree = ast.parse(checks_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    constants = {}  # module-level NAME = "text", so that {NAME: [...]} resolves
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            constants[node.targets[0].id] = node.value.value
    plan = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if not any(isinstance(t, ast.Name) and t.id == "EXERCISES" for t in targets):
            continue
        plan = None
        if not isinstance(value, ast.Dict):
            continue
        entries = []
        for key, val in zip(value.keys, value.values):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                name = key.value
            elif isinstance(key, ast.Name) and key.id in constants:
                name = constants[key.id]
            else:
                break
            if not isinstance(val, (ast.List, ast.Tuple)) or not val.elts:
                break
            names = [e.id if isinstance(e, ast.Name) else ast.unparse(e) for e in val.elts]
            entries.append((name, names))
        else:
            plan = entries
    return plan


# ----------------------------------------------------------------------------- one topic


def _display(path) -> str:
    """A path relative to the working directory when it lies below it, else relative to the
    repository when it lies there (a notebook runs in notebooks/), else absolute."""
    for root in (os.getcwd(), REPO_ROOT):
        rel = os.path.relpath(path, root)
        if not rel.startswith(".."):
            return rel
    return os.path.abspath(path)


def _last_line(text: str) -> str:
    """The most telling line of a dead child's output: a fatal error, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("Fatal Python error")]
    return (fatal[0] if fatal else lines[-1] if lines else "")[:200]


def load_checks(topic: Topic, hidden: bool) -> dict:
    """EXERCISES of the topic (trusted code, imported here), plus its hidden checks if asked."""
    exercises = dict(_import(topic.checks_module, topic.checks_file).EXERCISES)
    hidden_file = HIDDEN_CHECKS_DIR / f"{topic.name}.py"
    if hidden and hidden_file.is_file() and topic.checks_module:
        for name, extra in _import(f"grader.checks_hidden.{topic.name}", hidden_file).EXERCISES.items():
            exercises[name] = list(exercises.get(name, [])) + list(extra)
    for name, checks in exercises.items():
        if not isinstance(name, str) or not isinstance(checks, (list, tuple)) or not checks or \
                not all(callable(c) for c in checks):
            raise TypeError(f"EXERCISES[{name!r}] must be a non-empty list of check functions")
        for c in checks:
            if kind_of(c) not in KINDS:
                raise TypeError(f"check {getattr(c, '__name__', c)!r} of EXERCISES[{name!r}] has check_kind "
                                f"{kind_of(c)!r}; use one of {KINDS} (grader.checks.property_check)")
    return exercises


def kind_of(fn) -> str:
    """A check's kind: "property" when decorated with grader.checks.property_check, else "value"."""
    return getattr(fn, "check_kind", VALUE)


def _import(module: str | None, file: Path):
    if module:
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location(f"_grader_checks_{file.stem}", file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def describe_failure(exc: BaseException, timeout: float) -> str:
    """One readable message for an exception raised while a check ran."""
    where = getattr(exc, "student_where", "")
    if isinstance(exc, StudentProcessDied):
        return f"timed out after {timeout:g} s (an infinite loop, or far too slow)" if str(exc) == "timed out" \
            else str(exc)
    if isinstance(exc, NotImplementedError):
        text, prefix = str(exc), "Exercise: implement "
        if text.startswith(prefix):
            return "not implemented yet: " + text[len(prefix):].split(" ")[0]
        return "not implemented yet" + (f" ({text})" if text else "")
    if isinstance(exc, AssertionError) and not where:
        text = str(exc).strip()
        return text or "check failed: " + "".join(traceback.format_exception_only(exc)).strip()
    if isinstance(exc, MemoryError):
        return f"ran out of memory (MemoryError; the student process may use --memory-mb){where}"
    if isinstance(exc, StudentError):
        return f"{exc}{where}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def run_check(fn, sandbox: Sandbox, timeout: float) -> tuple[bool, str, bool]:
    """(passed, message, the child died or hung) for one check; never raises.

    The child has ``timeout`` seconds to answer each call, and the check as a whole
    CHECK_BUDGET times that (the parent's own computations included)."""
    sandbox.call_limit = timeout
    sandbox.deadline = time.monotonic() + CHECK_BUDGET * timeout
    reference.HIDDEN[0] = getattr(fn, "__module__", "").startswith("grader.checks_hidden")
    try:
        sandbox.request({"op": "reset"})
        fn(StudentModule(sandbox))
        return True, "ok", False
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure is a failed check
        message = describe_failure(exc, timeout)
        return False, message[:MAX_MESSAGE], isinstance(exc, StudentProcessDied)


def grade_topic(topic: Topic, student: Path, timeout: float, select: list[str] | None,
                topic_timeout: float, show_output: bool, memory_mb: int = 4096,
                hidden: bool = False) -> TopicResult:
    """Grade one topic: the checks run here, the student's functions in a sandboxed child."""
    start = time.monotonic()
    result = TopicResult(topic.name, str(student))
    try:
        exercises = load_checks(topic, hidden)
    except Exception as exc:  # noqa: BLE001 - a broken checks module is a grader error
        return _broken_checks(topic, result, select, exc)
    if select is not None:
        exercises = {k: v for k, v in exercises.items() if k in set(select)}
    _warm_up_autograd()
    sandbox = Sandbox(topic.name, student, _display(student), memory_mb, int(topic_timeout) + 10)
    fatal = None  # a message for every check left when the student's module cannot be imported
    try:
        for name, checks in exercises.items():
            exercise, fatal = _grade_exercise(name, checks, sandbox, result, timeout, start + topic_timeout, fatal)
            result.exercises.append(exercise)
        if show_output and sandbox.output().strip():
            print(f"----- output while grading {topic.name} -----\n{sandbox.output().rstrip()}", file=sys.stderr)
    finally:
        result.workers = sandbox.starts
        sandbox.close()
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _broken_checks(topic: Topic, result: TopicResult, select: list[str] | None, exc: Exception) -> TopicResult:
    """The result of a topic whose checks module does not load: every check fails, saying so."""
    result.grader_error = True
    result.notes.append(f"grader error: {_display(topic.checks_file)} is broken: {type(exc).__name__}: {exc}")
    plan = static_plan(topic.checks_file) or [(topic.name, ["load_checks"])]
    msg = f"grader error: the checks for this topic could not be loaded ({type(exc).__name__}: {exc})"
    result.exercises = [ExerciseResult(topic.name, n, [CheckResult(c, False, msg) for c in cs])
                        for n, cs in plan if select is None or n in select]
    return result


def _grade_exercise(name: str, checks: list, sandbox: Sandbox, result: TopicResult, timeout: float,
                    deadline: float, fatal: str | None) -> tuple[ExerciseResult, str | None]:
    """Run one exercise's checks in order: (its result, the import failure that fails all the rest)."""
    records, broken = [], None
    for fn in checks:
        check, kind = getattr(fn, "__name__", repr(fn)), kind_of(fn)
        if fatal or broken or time.monotonic() > deadline:
            why = fatal or (f"not run: the earlier check {broken} killed the student process" if broken
                            else "not run: the topic's time limit was reached")
            records.append(CheckResult(check, False, why, kind=kind))
            continue
        if sandbox.proc is None:
            fatal = _start(sandbox, result, timeout)
            if fatal:
                records.append(CheckResult(check, False, fatal, kind=kind))
                continue
        t0 = time.perf_counter()
        passed, message, died = run_check(fn, sandbox, timeout)
        records.append(CheckResult(check, passed, message, round(time.perf_counter() - t0, 3), kind))
        if died:
            detail = _last_line(sandbox.output(this_child=True))
            result.notes.append(f"during {name}/{check}: {message}" + (f"; last output: {detail}" if detail else ""))
            sandbox.stop()
            broken = check
    return ExerciseResult(result.topic, name, records), fatal


def _warm_up_autograd() -> None:
    """One tiny backward pass, so that autograd's start-up is not charged to the first check."""
    if "torch" not in sys.modules:  # checks that need no torch: nothing to warm up
        return
    import torch  # with --jobs, another thread may still be importing it: this waits for it to finish

    x = torch.ones(2, requires_grad=True)
    torch.autograd.grad([(x * x).sum()], [x], [torch.ones(())])  # explicit grad_outputs: ~2 s the first time


def _start(sandbox: Sandbox, result: TopicResult, timeout: float) -> str | None:
    """Start the child; None, or the message for every check when the module cannot be imported."""
    if not sandbox.student.is_file():
        return f"file not found: {sandbox.display}"
    try:
        sandbox.start(import_timeout=timeout)
        return None
    except StudentProcessDied as exc:
        message = f"timed out after {timeout:g} s" if str(exc) == "timed out" else str(exc)
        detail = _last_line(sandbox.output(this_child=True))
        result.notes.append(f"while importing the student module: {message}" + (f"; last output: {detail}" if detail else ""))
        sandbox.stop()
        return f"{message} while importing the student module"
    except Exception as exc:  # noqa: BLE001 - the student's module raised while being imported
        sandbox.stop()
        return f"importing {sandbox.display} failed: {describe_failure(exc, timeout)}"


# ----------------------------------------------------------------------------- what to grade


class UsageError(ValueError):
    """A request that names nothing gradable (a missing folder, an unknown exercise); the
    message is one line, for the command line and for ``check()`` alike."""


@dataclass
class Settings:
    """How to grade: the command-line options that are not about what to grade."""
    timeout: float = 10.0
    topic_timeout: float = 300.0
    jobs: int = 1
    show_output: bool = False
    memory_mb: int = 4096
    hidden: bool = False


@dataclass
class Plan:
    """What to grade: the topics, each one's student file and its selected exercises."""
    path: Path  # as given, for the report's header
    checks_dir: Path
    topics: list[Topic]
    files: dict[str, Path]  # topic -> the student's <topic>.py
    selections: dict[str, list[str] | None]  # topic -> exercises (None: all)
    plans: dict[str, list | None]  # topic -> static_plan of its checks


def student_files(topics: list[Topic], path: Path, topic: str | None,
                  checks_dir: Path) -> tuple[list[Topic], dict[str, Path]]:
    """The topics that PATH can be graded on and the student's file of each."""
    if path.is_file():
        name = topic or path.stem
        topics = [t for t in topics if t.name == name]
        if not topics:
            raise UsageError(f"no checks for topic {name!r} in {checks_dir}; name the file "
                             "<topic>.py or pass --topic TOPIC")
        return topics, {name: path.resolve()}
    if path.is_dir():
        if topic:
            raise UsageError("--topic only applies when PATH is a single .py file")
        return topics, {t.name: (path / f"{t.name}.py").resolve() for t in topics}
    raise UsageError(f"{path} is neither a folder nor a .py file (run from the repository root, "
                     "or pass the exercises folder)")


def select(topics: list[Topic], plans: dict[str, list | None], only: list[str] | None) -> dict:
    """{topic: exercises to grade, or None for all} for the names in ``only`` (None: all)."""
    wanted = set(only or [])
    selections: dict[str, list[str] | None] = {}
    matched: set[str] = set()
    for t in topics:
        if not wanted or t.name in wanted:
            selections[t.name] = None
            matched.add(t.name)
        elif plans[t.name] is not None:
            names = [n for n, _ in plans[t.name] if n in wanted]
            matched.update(names)
            if names:
                selections[t.name] = names
        else:
            selections[t.name] = sorted(wanted)  # the worker's plan will tell
            matched.update(wanted)
    unknown = sorted(wanted - matched)
    if unknown:
        known = sorted({t.name for t in topics} | {n for p in plans.values() if p for n, _ in p})
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(f"unknown exercise or topic {', '.join(unknown)}{hint}; choose from: {', '.join(known)}")
    if not selections:
        raise UsageError("nothing to grade")
    return selections


def make_plan(path: Path, checks_dir: Path, only: list[str] | None = None, topic: str | None = None) -> Plan:
    """Resolve what to grade without importing any checks; raises UsageError."""
    if not checks_dir.is_dir():
        raise UsageError(f"checks folder {checks_dir} not found")
    topics, files = student_files(discover_topics(checks_dir), path, topic, checks_dir)
    plans = {t.name: static_plan(t.checks_file) for t in topics}
    selections = select(topics, plans, only)
    return Plan(path, checks_dir, [t for t in topics if t.name in selections], files, selections, plans)


# ----------------------------------------------------------------------------- grading a plan


def _grade_one(plan: Plan, settings: Settings, t: Topic) -> TopicResult:
    student, select_, static = plan.files[t.name], plan.selections[t.name], plan.plans[t.name]
    if not student.is_file() and static is not None and not settings.hidden:  # no child needed to say so
        r = TopicResult(t.name, str(student))
        msg = f"file not found: {_display(student)}"
        r.exercises = [ExerciseResult(t.name, n, [CheckResult(c, False, msg) for c in cs])
                       for n, cs in static if select_ is None or n in select_]
        return r
    return grade_topic(t, student, settings.timeout, select_, settings.topic_timeout, settings.show_output,
                       settings.memory_mb, settings.hidden)


def grade_plan(plan: Plan, settings: Settings) -> list[TopicResult]:
    """Grade every topic of the plan (each in its own sandbox); topics with nothing to show are dropped.

    KeyboardInterrupt propagates once grade_topic's ``finally`` has killed the children."""
    harden_parent()
    if settings.jobs > 1:
        with ThreadPoolExecutor(max_workers=settings.jobs) as pool:  # each thread only waits on its worker
            graded = list(pool.map(lambda t: _grade_one(plan, settings, t), plan.topics))
    else:
        graded = [_grade_one(plan, settings, t) for t in plan.topics]
    return [r for r in graded if r.exercises or r.notes]


def report_header(plan: Plan, settings: Settings) -> str:
    return (f"Grading {plan.path} with the checks in {_display(plan.checks_dir)} "
            f"({settings.timeout:g} s per check)")


# ----------------------------------------------------------------------------- from a notebook


def _course_path(path) -> Path:
    """``path`` as given when it exists (or is absolute), else below the repository root: a
    notebook runs in notebooks/, where "exercises" means the course's exercises/ folder."""
    given = Path(path)
    return given if given.is_absolute() or given.exists() else REPO_ROOT / given


def check(name: str, path="exercises", timeout: float = 10.0, show_output: bool = False) -> Grade:
    """Grade one exercise or topic as ``python -m grader PATH --only NAME`` does, print the
    same report and return it as a :class:`Grade` (``.points``, ``.scores``, ``.complete``).

    The student's code runs in the same sandboxed child process as on the command line.
    Raises ValueError, with a one-line message listing the choices, for an unknown name."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"check() takes the name of an exercise or topic as a string, got {name!r}")
    settings = Settings(timeout=timeout, show_output=show_output)
    plan = make_plan(_course_path(path), DEFAULT_CHECKS_DIR, [name])
    plan.path = Path(path)  # the header shows the folder as the learner named it
    results = grade_plan(plan, settings)
    grade = Grade(results, format_table(results, report_header(plan, settings)))
    print(grade.report)
    return grade


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader", description="Grade the exercises against grader/checks/.",
        epilog="Example: python -m grader --only sequence_logprobs_from_logits")
    parser.add_argument("path", nargs="?", default="exercises",
                        help="folder of <topic>.py files, or one .py file (default: exercises)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="grade only these exercises or topics")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="time limit of each check (default: 10)")
    parser.add_argument("--topic-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="time limit of a whole topic, worker restarts included (default: 300)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="grade up to N topics at the same time (default: 1)")
    parser.add_argument("--topic", default=None,
                        help="topic of a single-file PATH whose file name is not a topic name")
    parser.add_argument("--checks", default=str(DEFAULT_CHECKS_DIR), metavar="DIR",
                        help="folder of checks modules (default: grader/checks)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--expect", choices=["full", "zero"], default=None,
                        help="CI: exit 1 unless every check passes (full) or no check passes (zero)")
    parser.add_argument("--show-output", action="store_true",
                        help="show what the student code printed (hidden by default)")
    parser.add_argument("--hidden", action="store_true",
                        help="also run the hidden checks of grader/checks_hidden/ (the autograder)")
    parser.add_argument("--gradescope", metavar="RESULTS_JSON", default=None,
                        help="also write Gradescope's results.json to this path")
    parser.add_argument("--memory-mb", type=int, default=4096, metavar="MB",
                        help="address-space limit of the student process (default: 4096)")
    return parser


def _fail_usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace) -> Settings:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if not args.timeout > 0 or not args.topic_timeout > 0:
        raise UsageError("--timeout and --topic-timeout must be positive numbers of seconds")
    return Settings(args.timeout, args.topic_timeout, args.jobs, args.show_output, args.memory_mb, args.hidden)


def _print_results(args: argparse.Namespace, plan: Plan, settings: Settings, results: list[TopicResult]) -> None:
    """The table (or --json) on stdout, and Gradescope's results.json if asked."""
    exercises = [e for r in results for e in r.exercises]
    if args.gradescope:
        Path(args.gradescope).parent.mkdir(parents=True, exist_ok=True)
        Path(args.gradescope).write_text(json.dumps(gradescope_results(results), indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps({
            "path": str(plan.path), "checks_dir": str(plan.checks_dir), "timeout": settings.timeout,
            "exercises": [e.to_json() for e in exercises],
            "topics": [{"topic": r.topic, "file": r.file, "notes": r.notes, "seconds": r.seconds,
                        "workers": r.workers, "grader_error": r.grader_error} for r in results],
            "total": totals(exercises)}, indent=2))
    else:
        print(format_table(results, report_header(plan, settings)))


def _expect_status(expect: str | None, results: list[TopicResult]) -> int:
    """The exit code of --expect full / zero (0 without --expect), with the reasons on stderr."""
    exercises = [e for r in results for e in r.exercises]
    broken = [r.topic for r in results if r.grader_error]
    if expect and broken:
        print(f"grader error: the checks of {', '.join(broken)} could not be loaded", file=sys.stderr)
        return 1
    if expect == "full":
        bad = [e for e in exercises if not e.complete]
        if bad or not exercises:
            print(f"expected full marks, but {len(bad)} exercise(s) lost points:", file=sys.stderr)
            for e in bad:
                print(f"  {e.topic}/{e.name}: {shorten(e.first_failure, 200)}", file=sys.stderr)
            return 1
    elif expect == "zero":
        bad = [e for e in exercises if e.passed > 0]
        if bad:
            print("expected every exercise to score 0 (untouched stubs), but some checks passed "
                  "(a check must call the student's function):", file=sys.stderr)
            for e in bad:
                print(f"  {e.topic}/{e.name}: " + ", ".join(c.name for c in e.checks if c.passed), file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Grade as the command line asks (``python -m grader`` sends ``release`` and ``bundle`` to
    grader/release.py first, see grader/__main__.py); returns the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = _settings(args)
        plan = make_plan(Path(args.path), Path(args.checks), args.only, args.topic)
    except UsageError as exc:
        return _fail_usage(str(exc))
    try:
        results = grade_plan(plan, settings)
    except KeyboardInterrupt:  # grade_topic's finally killed the children
        print("interrupted", file=sys.stderr)
        return 130
    _print_results(args, plan, settings, results)
    return _expect_status(args.expect, results)


if __name__ == "__main__":
    sys.exit(main())
