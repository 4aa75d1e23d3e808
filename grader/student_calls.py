"""Student release: refimpl's graded functions call the student's exercises/<topic>.py.

grader/release.py writes this module, as it is, to the release's ``refimpl/_student.py``,
which the delegating bodies of grader/delegates.py import. EXERCISES is the ``exercises``
folder beside this file's parent folder: the release's exercises/ there, the course's here.
"""
import importlib.util
import sys
from pathlib import Path

EXERCISES = Path(__file__).resolve().parent.parent / "exercises"


def student(topic: str, name: str):
    """exercises/<topic>.py:<name>, re-raising an unwritten stub with directions."""
    key = f"_student_exercise_{topic}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, EXERCISES / f"{topic}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    fn = getattr(sys.modules[key], name)

    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotImplementedError as exc:
            raise NotImplementedError(
                f"this notebook runs your exercises/{topic}.py:{name}, which is not written yet: write it, "
                f"then check it with `python -m grader --only {name}`") from exc
    return run


def beyond(name: str, option: str) -> str:
    """The message of the NotImplementedError raised for an option that no exercise covers."""
    return (f"the student release computes {name} with your exercise, which covers {option} only; "
            "use the course's refimpl for other options")
