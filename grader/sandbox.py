"""The sandbox: the student's module runs in a child process, the checks stay in the grader.

:class:`Sandbox` copies the submission, grader/child.py, grader/codec.py and the refimpl modules a
student may use (never solutions/, never refimpl's own version of the graded functions) to a
temporary folder, and starts ``python -I -S child.py`` there:

- as its own session and process group, with RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_NPROC,
  RLIMIT_FSIZE and no core files;
- when the grader runs as root, under a fresh unprivileged uid that owns nothing (the child
  drops to it before importing the student's module and sets no_new_privs; only when the
  interpreter lives in a folder other users cannot read, e.g. under /root, it keeps
  CAP_DAC_READ_SEARCH, which also lets it read files that mode 700 would otherwise hide): the course tree
  is not writable from the child, the grader cannot be signalled or read through /proc, and at
  the end every process of that uid is killed, however it detached itself;
- without root, the grader is made non-dumpable (no /proc/<pid>/fd or ptrace from the child)
  and a subreaper, and kills the child's session and every orphan left to it.

:class:`StudentModule` is what a check receives: ``mod.fn(*args)`` sends the arguments to the
child as plain data (grader/codec.py) and returns the child's answer as fresh tensors and Python
values. Outputs that need a gradient are tied to the inputs by :class:`_Remote`, whose backward
asks the child for the vector-Jacobian product, so ``torch.autograd.grad(out, x)`` works in a
check as if the function had run here. In-place changes to the arguments are mirrored back.
"""
from __future__ import annotations

import builtins
import ctypes
import itertools
import json
import os
import re
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grader.codec as codec

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_LIMIT = 120.0  # seconds to import torch and the student's module
# refimpl layers a student may use; a topic's own module is removed (see FORBIDDEN)
ALLOWED_REFIMPL = ("__init__", "core/__init__", "core/checks", "core/utils", "core/tokenizer", "core/model",
                   "core/sampling", "core/tasks", "core/logprobs", "core/rollouts")
FORBIDDEN = {"logprobs": ("core/logprobs", "core/rollouts")}  # topic -> refimpl modules holding its answers
REFERENCE_NAMES = ("solutions", "refimpl.methods.dpo", "refimpl.methods.grpo", "refimpl.methods.kl", "refimpl.methods.reinforce",
                   "refimpl.core.rewards", "refimpl.experiments.labs.offline_online", "refimpl.core.logprobs")
REBUILT = {n: getattr(builtins, n) for n in (
    "ValueError", "TypeError", "NotImplementedError", "IndexError", "KeyError", "ZeroDivisionError",
    "RuntimeError", "AttributeError", "ArithmeticError", "OverflowError", "MemoryError", "RecursionError",
    "AssertionError", "LookupError")}
_uids = itertools.count()


class StudentError(Exception):
    """An exception of a type the grader does not rebuild (the type name is kept)."""


class StudentProcessDied(Exception):
    """The child died, hung past the time limit or broke the channel; ``str()`` says which."""


def harden_parent() -> None:
    """No ptrace or /proc/<pid>/fd access from same-uid processes; orphans are re-parented here."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER = 1
    except (OSError, AttributeError):
        pass


def course_paths() -> list[str]:
    """Every top-level entry of the course tree the child must not see: all of it but the
    folders holding the interpreter and its site-packages (a venv inside the repository)."""
    keep = [Path(p).resolve() for p in (sys.prefix, *site.getsitepackages())]
    return [str(e) for e in sorted(REPO_ROOT.iterdir())
            if not any(k == e.resolve() or e.resolve() in k.parents for k in keep)]


def _readable_by_others(path: Path) -> bool:
    """Can any user run this interpreter (every folder above it searchable by others)?"""
    return bool(path.stat().st_mode & 0o005 == 0o005) and all(p.stat().st_mode & 0o001 for p in path.parents)


def _proc_field(pid: str, key: str) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return line.split()[1]
    except OSError:
        return None
    return None


def _pids_of_uid(uid: int) -> list[int]:
    """Live (not zombie) processes of ``uid``; zombies re-parented to this process are reaped."""
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit() and _proc_field(p, "Uid") == str(uid):
            if _proc_field(p, "State") != "Z":
                found.append(int(p))
            elif _proc_field(p, "PPid") == str(os.getpid()) and int(p) not in Sandbox.live:
                try:
                    os.waitpid(int(p), os.WNOHANG)
                except ChildProcessError:
                    pass
    return found


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (kill(-1) from a forked helper running as that uid)."""
    for _ in range(100):
        if not _pids_of_uid(uid):
            return
        pid = os.fork()
        if pid == 0:  # only system calls here: safe in a threaded parent
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.01)


def _kill_session(sid: int) -> None:
    """Without root: SIGKILL the child's session and the orphans re-parented to this process."""
    me = str(os.getpid())
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid or (fields[1] == me and int(p) != sid and int(p) not in Sandbox.live):
            try:
                os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass


class Sandbox:
    """One student module in one child process at a time; restartable after a death."""

    live: set[int] = set()  # pids of running children (all sandboxes of this grader)

    def __init__(self, topic: str, student: Path, display: str, memory_mb: int, cpu_s: int) -> None:
        self.topic, self.student, self.display = topic, student, display
        self.root = Path(tempfile.mkdtemp(prefix=f"grader-{topic}-"))
        self.uid = 200_000 + (os.getpid() % 10_000) * 64 + next(_uids) % 64 if os.geteuid() == 0 else None
        self.limits = {"RLIMIT_AS": memory_mb * 2**20, "RLIMIT_CPU": cpu_s, "RLIMIT_NPROC": 256,
                       "RLIMIT_FSIZE": 64 * 2**20, "RLIMIT_CORE": 0}
        self.proc: subprocess.Popen | None = None
        self.deadline = float("inf")  # the whole check (set by the runner)
        self.call_limit = float("inf")  # seconds for the child to answer one request
        self.reply_by = float("inf")
        self.listing: dict[str, str] = {}
        self.starts = 0
        self._build_copy()

    def _build_copy(self) -> None:
        work = self.root / "work"
        (work / "refimpl" / "core").mkdir(parents=True)
        for name in ("child.py", "codec.py"):
            shutil.copy(REPO_ROOT / "grader" / name, work / name)
        for name in ALLOWED_REFIMPL:
            if name not in FORBIDDEN.get(self.topic, ()) and (REPO_ROOT / "refimpl" / f"{name}.py").is_file():
                shutil.copy(REPO_ROOT / "refimpl" / f"{name}.py", work / "refimpl" / f"{name}.py")
        shutil.copy(self.student, work / f"{self.topic}.py")
        home = self.root / "home"
        home.mkdir()
        os.chmod(self.root, 0o755)
        if self.uid is not None:
            os.chown(home, self.uid, self.uid)
        os.chmod(home, 0o700)

    # ------------------------------------------------------------------ process

    def start(self, import_timeout: float) -> None:
        """Start the child and wait for it to import the student's module (or fail to)."""
        self.stop()
        self.starts += 1
        if self.uid is not None:
            _kill_uid(self.uid)
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        work, home = self.root / "work", self.root / "home"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home), "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "REFIMPL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
               "PYTHONFAULTHANDLER": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
               "REFIMPL_CACHE": str(home)}
        config = {"site": site.getsitepackages(), "limits": self.limits, "fds": [requests_r, replies_w],
                  "preload": ["torch"] if "torch" in sys.modules else [], "uid": self.uid,
                  "read_cap": not _readable_by_others(Path(sys.executable).resolve()),
                  "hide": course_paths()}  # before the import's time limit
        cmd = [sys.executable, "-I", "-S", str(work / "child.py"), str(work / f"{self.topic}.py"), self.display,
               json.dumps(config)]
        self.log = open(self.root / "output.txt", "ab")
        self.log_start = self.log.tell()  # this child's output begins here
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=home, env=env,
            start_new_session=True, pass_fds=(requests_r, replies_w), close_fds=True)
        Sandbox.live.add(self.proc.pid)
        os.close(requests_r)
        os.close(replies_w)
        self.requests, self.replies = os.fdopen(requests_w, "wb"), replies_r
        self.deadline, self.reply_by = time.monotonic() + STARTUP_LIMIT, float("inf")
        self._receive()  # {"loaded": true}: python and torch are up
        self.deadline = time.monotonic() + import_timeout
        first = self._receive()
        if "import_error" in first:
            raise rebuild(first["import_error"])
        self.listing = first.get("ready", {})

    def output(self, this_child: bool = False) -> str:
        """What the student code printed (the last 20000 bytes), of every child or the last one."""
        try:
            data = (self.root / "output.txt").read_bytes()[getattr(self, "log_start", 0) if this_child else 0:]
            return data[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the child and everything it started."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        Sandbox.live.discard(self.proc.pid)
        if self.uid is not None:
            _kill_uid(self.uid)
        else:
            _kill_session(self.proc.pid)
        self.requests.close()
        os.close(self.replies)
        self.log.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ messages

    def _read(self, n: int) -> bytes:
        remaining = min(self.deadline, self.reply_by) - time.monotonic()
        if remaining <= 0 or not select.select([self.replies], [], [], remaining)[0]:
            raise StudentProcessDied("timed out")
        return os.read(self.replies, min(n, 2**20))

    def _receive(self) -> dict:
        try:
            return codec.receive(self._read)
        except EOFError:
            code = self.proc.wait(timeout=10) if self.proc else None
            raise StudentProcessDied(describe_exit(code)) from None
        except codec.ChannelError as exc:
            raise StudentProcessDied(f"the student process broke the grading channel ({exc})") from None

    def request(self, message: dict) -> dict:
        if self.proc is None:
            raise StudentProcessDied("the student process is not running")
        self.reply_by = time.monotonic() + self.call_limit
        try:
            codec.send(self.requests, message)
        except (BrokenPipeError, OSError):
            pass  # the reply (EOF) says what happened
        reply = self._receive()
        if "error" in reply:
            raise rebuild(reply["error"])
        return reply


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        extra = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (killed, maybe out of memory)",
                 "SIGXCPU": " (CPU time limit)", "SIGABRT": " (aborted)", "SIGBUS": " (bus error)"}
        return f"the student process was killed by {name}{extra.get(name, '')}"
    return f"the student process exited with code {code} (os._exit, a crash, or a kill in student code)"


def _names_reference(message: str) -> bool:
    """Whether a "No module named 'x'" message names a reference module or a package above one
    (the sandbox's refimpl holds core/ only, so refimpl.methods itself is missing there)."""
    missing = re.search(r"No module named '([\w.]+)'", message)
    return any(r in message for r in REFERENCE_NAMES) or bool(
        missing and any(r.startswith(missing.group(1) + ".") for r in REFERENCE_NAMES))


def rebuild(error: dict) -> BaseException:
    """The child's exception as a grader-side exception of the same builtin type, or StudentError."""
    kind, message = str(error.get("type")), str(error.get("message", ""))
    if kind == "SystemExit":
        exc = StudentError(f"the code called sys.exit({message}); a function must return, not exit")
    elif kind == "ModuleNotFoundError" and _names_reference(message):
        exc = StudentError(f"{message}: a submission may not import a reference answer (solutions/ or "
                           "refimpl's implementation of the graded function); write the function yourself")
    elif kind in REBUILT:
        exc = REBUILT[kind](message)
    else:
        exc = StudentError(f"{kind}: {message}")
    exc.student_type, exc.student_where = kind, str(error.get("where", ""))
    return exc


# ----------------------------------------------------------------------------- the checks' side


class StudentModule:
    """The student's module as a check sees it: its functions run in the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def __getattr__(self, name: str):
        kind = self._sandbox.listing.get(name)
        if kind is None or name.startswith("_"):
            raise AttributeError(name)
        if kind != "function":
            return codec.Opaque(kind)
        return lambda *args, **kwargs: call(self._sandbox, name, args, kwargs)


def call(sandbox: Sandbox, name: str, args: tuple, kwargs: dict):
    """Run ``name(*args, **kwargs)`` in the child; the answer as fresh tensors and values."""
    memo: dict = {}
    message = {"op": "call", "fn": name, "args": codec.encode(list(args), memo),
               "kwargs": codec.encode(dict(kwargs), memo)}
    sent = {k: t for k, t in memo.values()}
    grad_inputs = [k for k, t in sent.items() if t.requires_grad]
    message["grad_inputs"] = grad_inputs
    reply = sandbox.request(message)
    try:
        refs: dict = {}
        value = codec.decode(reply["value"], refs)
        changed = [(sent[k], codec.decode(data)) for k, data in reply.get("changed", [])]
        outputs = [refs[i] for i in reply.get("grad_outputs", [])]
    except (codec.ChannelError, KeyError, TypeError, ValueError) as exc:
        raise StudentProcessDied(f"the student process sent a malformed answer ({exc})") from None
    for original, new in changed:  # mirror in-place changes onto the check's tensors
        with sys.modules["torch"].no_grad():
            if new.shape != original.shape:
                raise AssertionError(f"{name} changed the shape of an argument in place")
            original.copy_(new)
    if not grad_inputs or not outputs:
        return value
    inputs = [sent[k] for k in grad_inputs]
    tied = _Remote.apply(sandbox, reply["call"], len(outputs), *outputs, *inputs)
    return _substitute(value, {id(o): t for o, t in zip(outputs, tied)})


def _substitute(value, new: dict):
    if id(value) in new:
        return new[id(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, new) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, new) for k, v in value.items()}
    return value


def _autograd_function():
    import torch

    class Remote(torch.autograd.Function):
        """Outputs computed in the child; backward is the child's vector-Jacobian product."""

        @staticmethod
        def forward(ctx, sandbox, call_id, n_out, *tensors):
            ctx.sandbox, ctx.call_id, ctx.n_out = sandbox, call_id, n_out
            ctx.inputs = [(t.dtype, t.shape) for t in tensors[n_out:]]
            return tuple(t.clone() for t in tensors[:n_out])

        @staticmethod
        def backward(ctx, *grads):
            reply = ctx.sandbox.request({"op": "backward", "call": ctx.call_id,
                                         "grads": [None if g is None else codec.encode(g) for g in grads]})
            out = []
            for data, (dtype, shape) in zip(reply["grads"], ctx.inputs):
                g = None if data is None else codec.decode(data).to(dtype)
                if g is not None and g.shape != shape:
                    raise AssertionError(f"a gradient of shape {tuple(g.shape)} for an input of shape {tuple(shape)}")
                out.append(g)
            return (None, None, None, *([None] * ctx.n_out), *out)

    return Remote


class _LazyRemote:
    def __getattr__(self, name):
        global _Remote
        _Remote = _autograd_function()
        return getattr(_Remote, name)


_Remote = _LazyRemote()
