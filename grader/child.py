"""The untrusted side: runs inside the sandbox copy, imports the student's module, and answers
the trusted grader's requests with plain data (grader/codec.py). It decides nothing: every
expected value and every comparison lives in the parent (grader/sandbox.py, grader/checks/).

    python -I -S child.py STUDENT_FILE DISPLAY_NAME CONFIG_JSON   (site dirs, rlimits, channel fds)

Requests and replies, one JSON message each:

    -> {"op": "call", "fn": name, "args": [...], "kwargs": {...}}
    <- {"value": ..., "grad_outputs": [output tensor ids that require grad], "changed": [[id, tensor]]}
    -> {"op": "backward", "call": k, "grads": [cotangent or None per grad output]}
    <- {"grads": [gradient or None per input that requires grad]}
    -> {"op": "reset"}  (same random state before every check)      <- {"ok": true}
    <- {"error": {"type": ..., "message": ..., "where": ...}}        any failure of student code
"""
import faulthandler
import importlib.util
import json
import os
import random
import resource
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder out
import codec  # noqa: E402 - copied next to this file in the sandbox


def set_limits(limits: dict) -> None:
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def hide_paths(paths: list) -> bool:
    """Hide the course tree from this process (root only): in a mount namespace of its own, an
    empty read-only tmpfs covers each folder of ``paths`` and /dev/null each file, so neither
    solutions/ nor refimpl's answers nor the checks can be read by path. Returns False where the
    kernel gives no mount namespace (e.g. a container without CAP_SYS_ADMIN); the grader then
    relies on file permissions alone.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        return False
    if libc.mount(None, b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE
        return False
    for path in paths:
        folder = os.path.isdir(path)
        src, fstype = (b"tmpfs", b"tmpfs") if folder else (b"/dev/null", None)
        flags = (1 | 2 | 4) if folder else 4096  # MS_RDONLY | MS_NOSUID | MS_NODEV ; MS_BIND
        data = b"size=4k,mode=0555" if folder else None
        if libc.mount(src, os.fsencode(path), fstype, flags, data) != 0:
            raise OSError(ctypes.get_errno(), f"could not hide {path}")
    return True


def drop_privileges(uid: int, read_cap: bool) -> None:
    """Become ``uid`` (root only): no write access to root's files, no signals to the grader.

    With ``read_cap``, CAP_DAC_READ_SEARCH stays, so that a Python installed in a root-only
    home remains readable; no_new_privs keeps setuid programs from giving anything back.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    cap = (1 << 2) if read_cap else 0  # CAP_DAC_READ_SEARCH
    data = (ctypes.c_uint32 * 6)(cap, cap, 0, 0, 0, 0)  # effective, permitted, inheritable (x2)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs failed")
    if os.geteuid() != uid:
        raise OSError("could not drop privileges")


def make_task(name, fields):
    if name == "Problem":
        from refimpl.core.tasks import Problem

        return Problem(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    from refimpl.core.tasks import get_task

    task = get_task(name, **fields)
    task.__grader_task__ = (name, fields)
    return task


def where(exc: BaseException, student_file: str, display: str) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.realpath(frame.filename) == os.path.realpath(student_file):
            return f" (at {display}:{frame.lineno} in {frame.name})"
    return ""


def error(exc: BaseException, student_file: str, display: str) -> dict:
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a broken __str__
        message = "(message unavailable)"
    if isinstance(exc, SystemExit):
        message = repr(exc.code)
    return {"error": {"type": type(exc).__name__, "message": message[:2000],
                      "where": where(exc, student_file, display)}}


class Server:
    def __init__(self, module, student_file: str, display: str) -> None:
        self.module, self.student_file, self.display = module, student_file, display
        self.graphs: list = []  # per call: (inputs that require grad, outputs that require grad)

    def call(self, request: dict) -> dict:
        refs: dict = {}
        args = codec.decode(request["args"], refs, make_task=make_task)
        kwargs = codec.decode(request["kwargs"], refs, make_task=make_task)
        torch = sys.modules.get("torch")
        inputs = dict(refs)
        grad_inputs = []
        for k in sorted(request.get("grad_inputs", [])):
            inputs[k].requires_grad_(True)
            grad_inputs.append(inputs[k])
        before = {k: t.detach().clone() for k, t in inputs.items()}
        out = getattr(self.module, request["fn"])(*args, **kwargs)
        memo: dict = {}
        value = codec.encode(out, memo)
        grad_outputs = [(i, t) for i, t in memo.values() if torch is not None and t.requires_grad]
        changed = [[k, codec.tensor_data(t)] for k, t in inputs.items()
                   if t.shape != before[k].shape or not torch.equal(t.detach(), before[k])]
        self.graphs.append((grad_inputs, [t for _, t in grad_outputs]))
        return {"value": value, "call": len(self.graphs) - 1, "changed": changed,
                "grad_outputs": [i for i, _ in grad_outputs]}

    def backward(self, request: dict) -> dict:
        import torch

        grad_inputs, outputs = self.graphs[request["call"]]
        pairs = [(o, codec.decode(g)) for o, g in zip(outputs, request["grads"]) if g is not None]
        grads = torch.autograd.grad([o for o, _ in pairs], grad_inputs, [g.to(o.dtype) for o, g in pairs],
                                    retain_graph=True, allow_unused=True)
        return {"grads": [None if g is None else codec.tensor_data(g) for g in grads]}

    def reset(self, request: dict) -> dict:
        self.graphs.clear()
        random.seed(0)
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(0)
        if "torch" in sys.modules:
            sys.modules["torch"].manual_seed(0)
        return {"ok": True}


def listing(module) -> dict:
    return {k: ("function" if callable(v) else type(v).__name__) for k, v in vars(module).items()
            if not k.startswith("_")}


def start_up(config: dict) -> None:
    """Before any limit: unbuffered output, the site folders, the preloaded modules and
    autograd's start-up (one tiny backward pass)."""
    sys.stdout.reconfigure(line_buffering=True)  # -I ignores PYTHONUNBUFFERED: keep the last line
    sys.stderr.reconfigure(line_buffering=True)  # printed before an os._exit or a crash
    faulthandler.enable()
    sys.path += config["site"]
    sys.dont_write_bytecode = True
    for name in config["preload"]:
        importlib.import_module(name)
    if "torch" in sys.modules:  # autograd's start-up, before any time limit
        torch = sys.modules["torch"]
        x = torch.ones(2, requires_grad=True)
        torch.autograd.grad([(x * x).sum()], [x], [torch.ones(())])  # explicit grad_outputs: ~2 s the first time


def lock_down(config: dict) -> bool:
    """Hide the course tree and drop root (when the grader runs as root), move to the empty
    home folder and set the resource limits; returns whether the course tree is hidden."""
    hidden = False
    if config["uid"] is not None:
        hidden = hide_paths(config["hide"])
        drop_privileges(config["uid"], config["read_cap"])
    os.chdir(os.environ["HOME"])
    set_limits(config["limits"])
    return hidden


def import_student(student_file: str):
    """The student's module, imported from its file as ``student``."""
    spec = importlib.util.spec_from_file_location("student", student_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules["student"] = module
    spec.loader.exec_module(module)
    return module


def serve(server: Server, requests, replies, student_file: str, display: str) -> None:
    """Answer the parent's requests, one reply each, until the parent closes the channel."""
    while True:
        try:
            request = codec.receive(requests.read)
        except EOFError:
            return
        try:
            reply = getattr(server, request["op"])(request)
        except BaseException as exc:  # noqa: BLE001 - student code failed; the parent decides
            reply = error(exc, student_file, display)
        try:
            codec.send(replies, reply)
        except (TypeError, ValueError) as exc:
            codec.send(replies, error(exc, student_file, display))


def main() -> None:
    """Start up, lock down, import the student's module and serve the parent's requests."""
    student_file, display, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    requests, replies = os.fdopen(config["fds"][0], "rb", buffering=0), os.fdopen(config["fds"][1], "wb")
    start_up(config)
    hidden = lock_down(config)
    codec.send(replies, {"loaded": True, "course_hidden": hidden})
    try:
        module = import_student(student_file)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        codec.send(replies, {"import_error": error(exc, student_file, display)["error"]})
        return
    codec.send(replies, {"ready": listing(module)})
    serve(Server(module, student_file, display), requests, replies, student_file, display)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # no interpreter shutdown: student threads or atexit hooks cannot delay the end
