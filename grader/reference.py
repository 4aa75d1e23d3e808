"""Expected values for the checks, computed in the trusted grader from the reference solutions.

``expected("dpo.dpo_loss", *args)`` calls ``solutions/dpo.py:dpo_loss`` on copies of the
arguments and returns its (detached) result. A student release or an autograder bundle has no
solutions/: there the value comes from ``grader/expected.json``, which ``python -m grader
release`` records by grading the solutions once. The key of a value is a digest of the call
(name and plain-data arguments, grader/codec.py), so the stored file holds only input digests
and numbers, never solution code.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import grader.codec as codec

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO_ROOT / "solutions"
GOLDEN = Path(__file__).resolve().parent / "expected.json"
RECORDED: dict[str, tuple] = {}  # key -> (encoded value, asked only by hidden checks)
HIDDEN = [False]  # set by the runner while a hidden check runs
_modules: dict[str, object] = {}
_golden: dict | None = None


def _key(name: str, args: tuple, kwargs: dict) -> str:
    text = json.dumps(codec.encode([name, list(args), dict(kwargs)]), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _solution(topic: str):
    if topic not in _modules:
        spec = importlib.util.spec_from_file_location(f"_reference_{topic}", SOLUTIONS / f"{topic}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[topic] = module
    return _modules[topic]


def _copy(value):
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def expected(name: str, *args, **kwargs):
    """The reference solution's ``topic.function`` on these arguments (detached copies)."""
    key = _key(name, args, kwargs)
    topic, function = name.split(".")
    if (SOLUTIONS / f"{topic}.py").is_file():
        value = _copy(getattr(_solution(topic), function)(*_copy(args), **_copy(kwargs)))
        RECORDED[key] = (codec.encode(value), HIDDEN[0] and RECORDED.get(key, (None, True))[1])
        return value
    global _golden
    if _golden is None:
        _golden = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.is_file() else {}
    if key not in _golden:
        raise AssertionError(f"grader error: no stored expected value for {name} (regenerate the release "
                             "with `python -m grader release`)")
    return codec.decode(_golden[key])
