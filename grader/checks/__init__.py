"""Graded checks, one module per topic: ``grader/checks/<topic>.py`` grades ``<PATH>/<topic>.py``.

Each module defines ``EXERCISES = {"exercise_name": [check_fn, ...]}``; ``check_fn(mod)``
receives the student's imported module and raises AssertionError with a helpful message when
the student's function is wrong. Any other exception also fails the check (and is reported),
but a clear AssertionError is kinder: validate what the student returned before using it.

Every check must call the student's code, so that the untouched stubs score 0
(``python -m grader exercises --expect zero`` enforces it in CI).

A check is a *value* check unless it is decorated with :func:`property_check`. A value check
compares numbers (the result, a gradient) with the right ones; a property check tests
something that a wrong function can have as well: a detached result, a shape or dtype, an
untouched input, the right exception, never raising, zero where a zero is expected. A
property check earns points only when every value check of its exercise passes
(grader/report.py), so a function that returns zeros of the right shape scores 0. Rule of
thumb: if ``return torch.zeros(...)`` (or a function that raises where the reference raises)
would pass the check, it is a property check.

The helpers below are optional; torch is imported only when they are called, so a checks
module that does not need torch does not pay for it.
"""
from __future__ import annotations

from grader.report import PROPERTY


def property_check(fn):
    """Mark ``fn`` as a property check (see the module docstring); returns ``fn``."""
    fn.check_kind = PROPERTY
    return fn


def get_function(mod, name: str):
    """The student's function ``name``, or an AssertionError saying it is missing."""
    fn = getattr(mod, name, None)
    if fn is None:
        raise AssertionError(f"the module has no function named {name!r} (did you rename or delete it?)")
    if not callable(fn):
        raise AssertionError(f"{name} should be a function, found a {type(fn).__name__}")
    return fn


def assert_tensor(value, what: str, shape: tuple | None = None, dtype=None, floating: bool = False,
                  finite: bool = False):
    """Assert that ``value`` is a torch.Tensor with the given shape / dtype; return it.

    what: a name for messages ("the result of f"); shape: expected shape, None entries match any
    size; dtype: exact dtype expected; floating: any floating dtype; finite: no NaN or inf.
    """
    import torch

    if not isinstance(value, torch.Tensor):
        extra = " (a tuple: return only the tensor)" if isinstance(value, tuple) else ""
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(value).__name__}{extra}")
    if shape is not None:
        ok = value.dim() == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            raise AssertionError(f"{what}: expected shape {want}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise AssertionError(f"{what}: expected dtype {dtype}, got {value.dtype}")
    if floating and not value.is_floating_point():
        raise AssertionError(f"{what}: expected a floating-point tensor, got dtype {value.dtype}")
    if finite and value.is_floating_point() and not torch.isfinite(value.detach()).all():
        raise AssertionError(f"{what}: contains NaN or inf: {value.detach().tolist()}")
    return value


def assert_close(actual, expected, what: str, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Assert two tensors (or numbers) agree elementwise, with a message showing both."""
    import torch

    a = torch.as_tensor(actual.detach() if isinstance(actual, torch.Tensor) else actual, dtype=torch.float64)
    e = torch.as_tensor(expected.detach() if isinstance(expected, torch.Tensor) else expected, dtype=torch.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: expected shape {tuple(e.shape)}, got {tuple(a.shape)}")
    if not torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=False):
        diff = (a - e).abs().max().item()
        raise AssertionError(f"{what}: expected {_fmt(e)}, got {_fmt(a)} (max abs difference {diff:.3g})")


def _fmt(t) -> str:
    flat = t.flatten().tolist()
    body = ", ".join(f"{x:.4g}" for x in flat[:8]) + (", ..." if len(flat) > 8 else "")
    return f"[{body}]" if t.dim() else body
