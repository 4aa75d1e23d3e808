"""Grade student modules against the checks in grader/checks/.

    python -m grader [PATH] [--only NAME ...] [--timeout SECONDS] [--json] [--expect full|zero]

PATH is a folder (default ``exercises``) holding ``<topic>.py`` files, or one ``.py`` file
(its topic is its file name, or ``--topic``). Every ``grader/checks/<topic>.py`` defines
``EXERCISES = {"exercise_name": [check_fn, ...]}`` and grades ``PATH/<topic>.py``.

Isolation: each topic runs in its own subprocess (grader/worker.py; torch is imported once
per topic). Inside it every check has a SIGALRM time limit (``--timeout``, default 10 s) and
any exception is caught and reported. Outside it a watchdog kills a worker that makes no
progress for ``timeout + grace`` seconds (student code that swallows the alarm, a stuck C
call) or that exceeds ``--topic-timeout``. When the worker dies (``os._exit``, a segfault,
a kill) the check it was running fails with the reason, the rest of that exercise is marked
not run, and a fresh worker carries on with the next exercise.

Score: an exercise earns (checks passed) / (checks) points and is complete when all pass.
The exit code is 0 for any grading run, unless ``--expect`` is given (for CI):
``--expect full`` exits 1 if any check fails (run it on solutions/), ``--expect zero`` exits
1 if any exercise earns points (run it on the untouched, generated exercises/).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from grader.report import CheckResult, ExerciseResult, TopicResult, shorten, format_table, totals

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKS_DIR = Path(__file__).resolve().parent / "checks"
STARTUP_LIMIT = 120.0  # seconds a worker may take to import torch and the checks module
POLL = 0.02  # seconds between looks at a running worker


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


def _signal_name(returncode: int) -> str:
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
    extra = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (killed, maybe out of memory)",
             "SIGABRT": " (aborted)", "SIGBUS": " (bus error)", "SIGFPE": " (arithmetic error)"}
    return name + extra.get(name, "")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class WorkerOutcome:
    events: list[dict]
    returncode: int | None
    failure: str | None  # None when the worker reported "done" or a clean error event
    output: str


def run_worker(topic: Topic, student: Path, timeout: float, select: list[str] | None,
               deadline: float, grace: float) -> WorkerOutcome:
    """Start one worker and follow its progress file until it finishes, dies or stalls."""
    with tempfile.TemporaryDirectory(prefix="grader-") as tmp:
        results = Path(tmp) / "results.jsonl"
        results.touch()
        cmd = [sys.executable, "-m", "grader.worker", "--topic", topic.name, "--student", str(student),
               "--results", str(results), "--timeout", str(timeout)]
        cmd += ["--checks-module", topic.checks_module] if topic.checks_module else \
               ["--checks-file", str(topic.checks_file)]
        if select is not None:
            cmd += ["--select", *select]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONFAULTHANDLER"] = "1"
        log = open(Path(tmp) / "output.txt", "w+b")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        events: list[dict] = []
        buffer = b""
        offset = 0
        last_progress = time.monotonic()
        failure = None
        try:
            with open(results, "rb") as fh:
                while True:
                    finished = proc.poll() is not None
                    fh.seek(offset)
                    chunk = fh.read()
                    offset += len(chunk)
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            try:
                                events.append(json.loads(line))
                            except json.JSONDecodeError:
                                continue
                            last_progress = time.monotonic()
                    if finished:
                        break
                    now = time.monotonic()
                    started = any(e["event"] == "plan" for e in events) or any(
                        e["event"] == "checks_error" for e in events)
                    limit = timeout + grace if started else STARTUP_LIMIT
                    if now > deadline:
                        failure = "the topic's time limit was reached; the grading process was killed"
                        break
                    if now - last_progress > limit:
                        if started:
                            failure = (f"no progress for {limit:g} s (student code caught the time-limit "
                                       "signal or is stuck in a long computation); the grading process was killed")
                        else:
                            failure = f"the grading process did not start within {limit:g} s"
                        break
                    time.sleep(POLL)
        finally:
            _kill_group(proc)  # also reaps anything student code started
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
        log.close()
    ended_cleanly = any(e["event"] in ("done", "checks_error", "import_error") for e in events)
    if failure is None and not ended_cleanly:
        code = proc.returncode
        how = f"was killed by {_signal_name(code)}" if code is not None and code < 0 else f"exited with code {code}"
        failure = f"the grading process {how} (os._exit, a crash, or a kill in student code)"
    return WorkerOutcome(events, proc.returncode, failure, output)


def _display(path) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    rel = os.path.relpath(path)
    return os.path.abspath(path) if rel.startswith("..") else rel


def _last_line(text: str) -> str:
    """The most telling line of a dead worker's output: a fatal error, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("Fatal Python error")]
    return (fatal[0] if fatal else lines[-1] if lines else "")[:200]


def grade_topic(topic: Topic, student: Path, timeout: float, select: list[str] | None,
                topic_timeout: float, show_output: bool) -> TopicResult:
    """Grade one topic, restarting the worker after a crash so later exercises still count."""
    start = time.monotonic()
    deadline = start + topic_timeout
    grace = max(2.0, 0.5 * timeout)
    result = TopicResult(topic.name, str(student))
    plan: list[tuple[str, list[str]]] | None = None
    done: dict[tuple[str, int], CheckResult] = {}
    pending = select

    def fail_rest(message: str, only: str | None = None) -> None:
        for name, checks in plan or []:
            if only is not None and name != only:
                continue
            for i, check in enumerate(checks):
                done.setdefault((name, i), CheckResult(check, False, message))

    while True:
        outcome = run_worker(topic, student, timeout, pending, deadline, grace)
        result.workers += 1
        if show_output and outcome.output.strip():
            print(f"----- output while grading {topic.name} -----\n{outcome.output.rstrip()}", file=sys.stderr)
        began = None
        for event in outcome.events:
            kind = event["event"]
            if kind == "plan" and plan is None:
                plan = [(e["name"], e["checks"]) for e in event["exercises"]]
            elif kind == "checks_error":
                result.grader_error = True
                result.notes.append(f"grader error: {_display(topic.checks_file)} is broken: {event['message']}")
                plan = plan or static_plan(topic.checks_file) or [(topic.name, ["load_checks"])]
                if select is not None:
                    plan = [p for p in plan if p[0] in select] or plan
                fail_rest(f"grader error: the checks for this topic could not be loaded ({event['message']})")
            elif kind == "import_error":
                fail_rest(event["message"])
            elif kind == "begin":
                began = (event["exercise"], event["index"])
            elif kind == "result":
                checks = dict(plan or []).get(event["exercise"], [])
                name = checks[event["index"]] if event["index"] < len(checks) else f"check {event['index']}"
                done[(event["exercise"], event["index"])] = CheckResult(
                    name, event["passed"], event["message"], event.get("seconds", 0.0))
                began = None
        if outcome.failure is None:
            break
        detail = _last_line(outcome.output)
        note = f"{outcome.failure}" + (f"; last output: {detail}" if detail else "")
        if plan is None:
            plan = static_plan(topic.checks_file) or [(topic.name, ["start_worker"])]
            if select is not None:
                plan = [p for p in plan if p[0] in select] or plan
            result.notes.append(note)
            fail_rest(outcome.failure)
            break
        if began is None:  # died outside a check: while importing the student module, or at exit
            importing = any(e["event"] == "import_start" for e in outcome.events) and not any(
                e["event"] == "imported" for e in outcome.events)
            where = "while importing the student module" if importing else "between checks"
            result.notes.append(f"{where}: {note}")
            fail_rest(f"{outcome.failure} {where}")
            break
        exercise, index = began
        checks = dict(plan)[exercise]
        result.notes.append(f"during {exercise}/{checks[index]}: {note}")
        done[began] = CheckResult(checks[index], False, outcome.failure)
        fail_rest(f"not run: the earlier check {checks[index]} killed the grading process", only=exercise)
        remaining = [name for name, cs in plan if not any((name, i) in done for i in range(len(cs)))]
        if not remaining:
            break
        if time.monotonic() >= deadline:
            fail_rest("not run: the topic's time limit was reached")
            break
        pending = remaining

    for name, checks in plan or []:
        result.exercises.append(ExerciseResult(topic.name, name, [
            done.get((name, i), CheckResult(check, False, "not run")) for i, check in enumerate(checks)]))
    result.seconds = round(time.monotonic() - start, 3)
    return result


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
                        help="CI: exit 1 unless every check passes (full) or every exercise scores 0 (zero)")
    parser.add_argument("--show-output", action="store_true",
                        help="show what the student code printed (hidden by default)")
    return parser


def _fail_usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        return _fail_usage("--jobs must be at least 1")
    if not args.timeout > 0 or not args.topic_timeout > 0:
        return _fail_usage("--timeout and --topic-timeout must be positive numbers of seconds")
    checks_dir = Path(args.checks)
    if not checks_dir.is_dir():
        return _fail_usage(f"checks folder {checks_dir} not found")
    topics = discover_topics(checks_dir)
    path = Path(args.path)
    if path.is_file():
        name = args.topic or path.stem
        topics = [t for t in topics if t.name == name]
        if not topics:
            return _fail_usage(f"no checks for topic {name!r} in {checks_dir}; name the file "
                               "<topic>.py or pass --topic TOPIC")
        files = {name: path.resolve()}
    elif path.is_dir():
        if args.topic:
            return _fail_usage("--topic only applies when PATH is a single .py file")
        files = {t.name: (path / f"{t.name}.py").resolve() for t in topics}
    else:
        return _fail_usage(f"{path} is neither a folder nor a .py file (run from the repository root, "
                           "or pass the exercises folder)")

    plans = {t.name: static_plan(t.checks_file) for t in topics}
    selections: dict[str, list[str] | None] = {}
    only = set(args.only or [])
    matched: set[str] = set()
    for t in topics:
        if not only or t.name in only:
            selections[t.name] = None
            matched.add(t.name)
        elif plans[t.name] is not None:
            names = [n for n, _ in plans[t.name] if n in only]
            matched.update(names)
            if names:
                selections[t.name] = names
        else:
            selections[t.name] = sorted(only)  # the worker's plan will tell
            matched.update(only)
    unknown = only - matched
    if unknown:
        known = sorted({t.name for t in topics} | {n for p in plans.values() if p for n, _ in p})
        return _fail_usage(f"unknown exercise or topic {', '.join(sorted(unknown))}; "
                           f"choose from: {', '.join(known)}")
    if not selections:
        return _fail_usage("nothing to grade")

    def grade_one(t: Topic) -> TopicResult:
        student, select, plan = files[t.name], selections[t.name], plans[t.name]
        if not student.is_file() and plan is not None:  # no need to start a worker to say so
            r = TopicResult(t.name, str(student))
            msg = f"file not found: {_display(student)}"
            r.exercises = [ExerciseResult(t.name, n, [CheckResult(c, False, msg) for c in cs])
                           for n, cs in plan if select is None or n in select]
            return r
        return grade_topic(t, student, args.timeout, select, args.topic_timeout, args.show_output)

    chosen = [t for t in topics if t.name in selections]
    try:
        if args.jobs > 1:
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each thread only waits on its worker
                graded = list(pool.map(grade_one, chosen))
        else:
            graded = [grade_one(t) for t in chosen]
    except KeyboardInterrupt:  # workers run in their own sessions; run_worker's finally killed them
        print("interrupted", file=sys.stderr)
        return 130
    results = [r for r in graded if r.exercises or r.notes]

    exercises = [e for r in results for e in r.exercises]
    if args.json:
        print(json.dumps({
            "path": str(path), "checks_dir": str(checks_dir), "timeout": args.timeout,
            "exercises": [e.to_json() for e in exercises],
            "topics": [{"topic": r.topic, "file": r.file, "notes": r.notes, "seconds": r.seconds,
                        "workers": r.workers, "grader_error": r.grader_error} for r in results],
            "total": totals(exercises)}, indent=2))
    else:
        print(format_table(results, f"Grading {path} with the checks in {_display(checks_dir)} "
                                    f"({args.timeout:g} s per check)"))

    broken = [r.topic for r in results if r.grader_error]
    if args.expect and broken:
        print(f"grader error: the checks of {', '.join(broken)} could not be loaded", file=sys.stderr)
        return 1
    if args.expect == "full":
        bad = [e for e in exercises if not e.complete]
        if bad or not exercises:
            print(f"expected full marks, but {len(bad)} exercise(s) lost points:", file=sys.stderr)
            for e in bad:
                print(f"  {e.topic}/{e.name}: {shorten(e.first_failure, 200)}", file=sys.stderr)
            return 1
    elif args.expect == "zero":
        bad = [e for e in exercises if e.passed > 0]
        if bad:
            print("expected every exercise to score 0 (untouched stubs), but some checks passed "
                  "(a check must call the student's function):", file=sys.stderr)
            for e in bad:
                print(f"  {e.topic}/{e.name}: " + ", ".join(c.name for c in e.checks if c.passed), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
