"""Grade one topic inside a child process (started by grader/runner.py, never by hand).

    python -m grader.worker --topic T (--checks-module M | --checks-file F) --student FILE
                            --results OUT.jsonl [--timeout S] [--select EXERCISE ...]

It imports the checks module, announces the plan, imports the student's module by file path,
then runs every check of the selected exercises, each under a SIGALRM time limit. Progress is
appended to OUT.jsonl, one JSON object per line, flushed at once, so the parent knows how far
the worker got if student code kills the process (os._exit, a segfault) or hangs it:

    {"event": "plan", "exercises": [{"name": ..., "checks": [...]}, ...]}
    {"event": "checks_error", "message": ...}          the checks module is broken (grader bug)
    {"event": "import_start"} / {"event": "import_error", "message": ...} / {"event": "imported"}
    {"event": "begin", "exercise": ..., "index": i}
    {"event": "result", "exercise": ..., "index": i, "passed": bool, "message": str, "seconds": s}
    {"event": "done"}

Student output (print) goes to the process's stdout/stderr, which the parent captures apart.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

MAX_MESSAGE = 2000  # characters kept of one failure message


class CheckTimeout(BaseException):
    """Raised by the SIGALRM handler; a BaseException so `except Exception` cannot swallow it."""


class _Alarm:
    """Per-check time limit with setitimer. Re-fires every 0.5 s in case student code catches it."""

    def __init__(self) -> None:
        self.armed = False
        self.fired = False

    def _handler(self, signum, frame):
        if self.armed:
            self.fired = True
            raise CheckTimeout()

    def arm(self, seconds: float) -> None:
        self.fired = False
        self.armed = True
        signal.signal(signal.SIGALRM, self._handler)
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0, 0)


ALARM = _Alarm()


def _short_path(path: str) -> str:
    """The path relative to the working directory when it lies below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return os.path.abspath(path) if rel.startswith("..") else rel


def _where(exc: BaseException, student_file: str, checks_file: str | None) -> str:
    """' (at exercises/x.py:12 in f)' for the deepest frame in the student's file, else in the check."""
    frames = traceback.extract_tb(exc.__traceback__)
    student = os.path.realpath(student_file)
    for frame in reversed(frames):
        if os.path.realpath(frame.filename) == student:
            return f" (at {_short_path(frame.filename)}:{frame.lineno} in {frame.name})"
    if checks_file is not None:
        checks = os.path.realpath(checks_file)
        for frame in reversed(frames):
            if os.path.realpath(frame.filename) == checks:
                return (f" (raised in the check, {_short_path(frame.filename)}:{frame.lineno}: "
                        "the function probably returned something of an unexpected type or shape)")
    if frames:
        return f" (at {_short_path(frames[-1].filename)}:{frames[-1].lineno})"
    return ""


def describe_failure(exc: BaseException, timeout: float, student_file: str, checks_file: str | None) -> str:
    """One readable message for any exception raised while running a check or importing."""
    if isinstance(exc, CheckTimeout):
        return f"timed out after {timeout:g} s (an infinite loop, or far too slow)"
    if isinstance(exc, NotImplementedError):
        text = str(exc)
        prefix = "Exercise: implement "
        if text.startswith(prefix):
            return "not implemented yet: " + text[len(prefix):].split(" ")[0]
        return "not implemented yet" + (f" ({text})" if text else "")
    if isinstance(exc, AssertionError):
        text = str(exc).strip()
        if text:
            return text
        return "check failed" + _where(exc, student_file, checks_file)
    if isinstance(exc, SystemExit):
        return f"the code called sys.exit({exc.code!r}); a function must return, not exit"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    if isinstance(exc, MemoryError):
        return "ran out of memory (MemoryError)"
    if isinstance(exc, RecursionError):
        return "RecursionError: maximum recursion depth exceeded" + _where(exc, student_file, checks_file)
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}{_where(exc, student_file, checks_file)}"


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def _seed_everything() -> None:
    """Same random state before every check, whatever ran before it."""
    random.seed(0)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(0)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)


def import_student(path: str, topic: str):
    """Import the student's file by path, under a private module name, as a real module."""
    name = f"_student_{topic}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def load_checks(topic: str, module: str | None, file: str | None):
    """The checks module: by name (grader.checks.<topic>) or by path (a test's own folder)."""
    if module:
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location(f"_grader_checks_{topic}", file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def validate_exercises(checks_mod) -> dict:
    """EXERCISES must map exercise names to non-empty lists of callables."""
    exercises = getattr(checks_mod, "EXERCISES", None)
    if not isinstance(exercises, dict):
        raise TypeError("the checks module must define EXERCISES = {'exercise_name': [check_fn, ...]}")
    for name, checks in exercises.items():
        if not isinstance(name, str):
            raise TypeError(f"EXERCISES key {name!r} is not a string")
        if not isinstance(checks, (list, tuple)) or not checks or not all(callable(c) for c in checks):
            raise TypeError(f"EXERCISES[{name!r}] must be a non-empty list of check functions")
    return exercises


def run_check(fn, mod, timeout: float, student_file: str, checks_file: str | None) -> tuple[bool, str]:
    """Run one check under the time limit; never raises."""
    try:
        try:
            _seed_everything()
            ALARM.arm(timeout)
            fn(mod)
        finally:
            ALARM.disarm()
        if ALARM.fired:  # student code caught CheckTimeout and carried on
            raise CheckTimeout()
        return True, "ok"
    except BaseException as exc:  # noqa: BLE001 - any failure of student code is a failed check
        try:
            return False, _clip(describe_failure(exc, timeout, student_file, checks_file))
        except BaseException:  # a broken __str__ on a student exception, a late alarm...
            return False, f"{type(exc).__name__} (message unavailable)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--checks-module")
    parser.add_argument("--checks-file")
    parser.add_argument("--student", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--select", nargs="*", default=None,
                        help="grade only these exercises (default: all of the topic)")
    args = parser.parse_args(argv)

    sys.dont_write_bytecode = True  # keep __pycache__ out of exercises/
    out = open(args.results, "a", encoding="utf-8", buffering=1)

    def emit(**event) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    try:
        checks_mod = load_checks(args.topic, args.checks_module, args.checks_file)
        exercises = validate_exercises(checks_mod)
    except BaseException as exc:  # noqa: BLE001
        emit(event="checks_error", message=_clip(f"{type(exc).__name__}: {exc}"))
        out.close()
        os._exit(0)
    checks_file = getattr(checks_mod, "__file__", args.checks_file)
    if args.select is not None:
        exercises = {k: v for k, v in exercises.items() if k in set(args.select)}
    emit(event="plan", exercises=[{"name": k, "checks": [getattr(c, "__name__", repr(c)) for c in v]}
                                  for k, v in exercises.items()])
    if not exercises:
        emit(event="done")
        out.close()
        os._exit(0)

    emit(event="import_start")
    if not os.path.isfile(args.student):
        emit(event="import_error", message=f"file not found: {_short_path(args.student)}")
        out.close()
        os._exit(0)
    try:
        try:
            ALARM.arm(args.timeout)
            mod = import_student(args.student, args.topic)
        finally:
            ALARM.disarm()
    except BaseException as exc:  # noqa: BLE001
        message = describe_failure(exc, args.timeout, args.student, None)
        emit(event="import_error", message=_clip(f"importing {_short_path(args.student)} failed: {message}"))
        out.close()
        os._exit(0)
    emit(event="imported")

    for name, checks in exercises.items():
        for index, fn in enumerate(checks):
            emit(event="begin", exercise=name, index=index)
            start = time.perf_counter()
            passed, message = run_check(fn, mod, args.timeout, args.student, checks_file)
            emit(event="result", exercise=name, index=index, passed=passed, message=message,
                 seconds=round(time.perf_counter() - start, 3))
    emit(event="done")
    out.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter shutdown: student threads or atexit hooks cannot hang us


if __name__ == "__main__":
    main()
