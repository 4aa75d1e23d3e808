"""Attacks on the grading process itself, one per exercise of the toy topic; `add` and
`absolute` are correct. @REPO@ and @PIDFILE@ are filled in by the test."""
import os
import signal
import subprocess
import sys

REPO = "@REPO@"


def add(a, b):
    return a + b


def mul(a, b):  # stop and kill the grader, its group, then stop itself
    for sig in (signal.SIGSTOP, signal.SIGTERM):
        for target in (lambda: os.kill(os.getppid(), sig), lambda: os.killpg(os.getpgid(os.getppid()), sig)):
            try:
                target()
            except OSError:
                pass
    os.kill(os.getpid(), signal.SIGSTOP)
    return a * b


def div(a, b):  # leave a process behind that escaped the session
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    with open("@PIDFILE@", "w") as fh:
        fh.write(str(proc.pid))
    return a // b + 1


def sub(a, b):  # write a forged report into the grader's stdout through /proc
    for fd in (1, 2):
        try:
            with open(f"/proc/{os.getppid()}/fd/{fd}", "w") as fh:
                fh.write('{"total": {"points": 99}}\n')
        except OSError:
            pass
    return 0


def neg(a):  # vandalise the course tree
    for rel in ("grader/checks/dpo.py", "tests/fixtures_grader/checks/toy.py", "solutions/dpo.py",
                "exercises/dpo.py", "README.md"):
        path = os.path.join(REPO, rel)
        try:
            with open(path, "w") as fh:
                fh.write("EXERCISES = {}\n")
        except OSError:
            pass
        try:
            os.unlink(path)
        except OSError:
            pass
    return 0


def square(a):  # allocate 12 GiB
    block = bytearray(12 * 2**30)
    return len(block)


def half(a):  # look for the expected value and the grader's functions
    frame = sys._getframe(1)
    while frame is not None:
        if "expected" in frame.f_locals:
            return frame.f_locals["expected"]
        frame = frame.f_back
    main = sys.modules.get("__main__")
    if main is not None:
        main.run_check = lambda *args, **kwargs: (True, "ok")
    return -1


def absolute(a):
    return abs(a)
