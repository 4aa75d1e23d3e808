"""Input checks shared by every public loss, config and trainer: one helper per concern.

Each helper raises ``TypeError`` when the argument is the wrong kind of object and
``ValueError`` when it has the right kind but a bad value; the message names the argument,
shows the value and says what to pass instead. Every comparison is written so that NaN fails
it (``not x > 0`` refuses NaN, ``x <= 0`` would let it through).

    real / number / positive / interval /      python (or numpy) scalars: any, finite,
    probability                                > 0, in an interval, in [0, 1]
    count / flag / at_least                    integers (bools refused) / bools / a >= b
    one_of                                     a value from a fixed set of names
    tensor / finite / logprobs / bool_mask     torch tensors: kind, dtype, shape, values
    same_shape                                 several tensors of one shape
    pairs / function / config                  preference data / a callable / a config
"""
from __future__ import annotations

import math
import numbers

import torch

LOGP_TOL = 1e-3   # log-probs may exceed 0 by float error, never by more than this


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""


def _like(like: str) -> str:
    return f" (that of {like})" if like else ""


def real(name: str, value, hint: str = "") -> float:
    """``value`` as a float; TypeError unless it is a real number (bool and str refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type "
                        f"{type(value).__name__}{_hint(hint)}")
    return float(value)


def number(name: str, value, hint: str = "") -> float:
    """A finite real number, returned as a float."""
    v = real(name, value, hint)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}{_hint(hint)}")
    return v


def positive(name: str, value, hint: str = "", allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``), returned as a float."""
    v = real(name, value, hint)
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, "
                         f"got {value!r}{_hint(hint)}")
    return v


def interval(name: str, value, low: float, high: float, closed: str = "[]",
             hint: str = "") -> float:
    """A finite number between ``low`` and ``high``; ``closed`` is "[]", "[)", "(]" or "()"."""
    v = real(name, value, hint)
    above = v >= low if closed[0] == "[" else v > low
    below = v <= high if closed[1] == "]" else v < high
    if not (math.isfinite(v) and above and below):
        raise ValueError(f"{name} must lie in {closed[0]}{low}, {high}{closed[1]}, "
                         f"got {value!r}{_hint(hint)}")
    return v


def probability(name: str, value, hint: str = "") -> float:
    """A probability: a number in [0, 1]."""
    return interval(name, value, 0.0, 1.0, "[]", hint)


def count(name: str, value, low: int | None = 0, hint: str = "") -> int:
    """An integer >= ``low`` (any integer if low is None; python or numpy ints, bool and
    float refused)."""
    want = "an int" if low is None else f"an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {want}, got {value!r} of type "
                        f"{type(value).__name__}{_hint(hint)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be {want}, got {value!r}{_hint(hint)}")
    return int(value)


def at_least(name: str, value, other_name: str, other, hint: str = "") -> None:
    """``value`` (of argument ``name``) must be >= ``other`` (of ``other_name``)."""
    if not value >= other:
        raise ValueError(f"{name}={value!r} is smaller than {other_name}={other!r}{_hint(hint)}")


def flag(name: str, value) -> bool:
    """A bool (True or False; 0, 1 and strings refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def one_of(name: str, value, options: tuple) -> None:
    """``value`` must be one of ``options`` (names such as loss types)."""
    if not isinstance(value, (str, type(None))) or value not in options:
        raise ValueError(f"unknown {name} {value!r}: use one of {options}")


def tensor(name: str, t, dims: tuple = (), shape: tuple | None = None,
           floating: bool = True, like: str = "") -> torch.Tensor:
    """A non-empty torch.Tensor with ``t.dim()`` in ``dims`` (any if empty), of ``shape`` if
    given (``like``: the argument that shape comes from), of a floating dtype if ``floating``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}; "
                        "wrap the values with torch.tensor(...)")
    if floating and not t.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {t.dtype}; use {name}.float()")
    if dims and t.dim() not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {want}, got shape {tuple(t.shape)}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}{_like(like)}, got "
                         f"{tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}): pass at least one entry")
    return t


def bool_mask(name: str, mask, shape: tuple, like: str = "") -> torch.Tensor:
    """A torch.bool tensor of ``shape`` (that of argument ``like``) selecting at least one entry."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of dtype torch.bool, got "
                        f"{type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be torch.bool, got {mask.dtype}: use {name}.bool()")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}{_like(like)}, got "
                         f"{tuple(mask.shape)}")
    if not mask.any():
        raise ValueError(f"{name} selects no entries: there is nothing to compute on")
    return mask


def finite(name: str, t: torch.Tensor, mask: torch.Tensor | None = None,
           hint: str = "") -> torch.Tensor:
    """No NaN or inf in ``t`` (only where ``mask`` is True, if given)."""
    vals = t if mask is None else t[mask]
    if not torch.isfinite(vals).all():
        where = " where the mask is True" if mask is not None else ""
        raise ValueError(f"{name} must be finite but contains NaN or inf{where}{_hint(hint)}")
    return t


def logprobs(name: str, t, dims: tuple = (), shape: tuple | None = None,
             mask: torch.Tensor | None = None, allow_zero_prob: bool = False,
             like: str = "") -> torch.Tensor:
    """Log-probabilities: a floating tensor, finite and <= 0 (up to LOGP_TOL) wherever
    ``mask`` is True (everywhere if no mask); ``allow_zero_prob`` also lets -inf through."""
    tensor(name, t, dims, shape, like=like)
    vals = t if mask is None else t[mask]
    if allow_zero_prob:
        vals = vals[vals != -float("inf")]
    finite(name, vals, hint="check the mask and that log-probs come from log_softmax, "
                            "not from log(0)")
    if vals.numel() and vals.max() > LOGP_TOL:
        raise ValueError(f"{name} holds log-probabilities, which are <= 0, but its largest "
                         f"entry is {vals.max().item():.4g}; pass log pi (log_softmax), "
                         "not logits or probabilities")
    return t


def same_shape(**tensors: torch.Tensor) -> None:
    """All the named tensors (None entries skipped) have one shape."""
    shapes = {k: tuple(t.shape) for k, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"these tensors must have the same shape, got {shapes}")


def function(name: str, fn) -> None:
    """None or a callable (a reward function, for instance)."""
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be a function (or None for the default), got "
                        f"{type(fn).__name__}")


def config(name: str, cfg, cls: type | tuple):
    """``cfg`` itself if it is an instance of ``cls``; ``cls()`` if it is None."""
    first = cls[0] if isinstance(cls, tuple) else cls
    if cfg is None:
        return first()
    if not isinstance(cfg, cls):
        raise TypeError(f"{name} must be a {first.__name__} (or None for the defaults), got "
                        f"{type(cfg).__name__}; build one with {first.__name__}(...)")
    return cfg

