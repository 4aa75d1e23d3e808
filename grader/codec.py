"""Plain-data messages between the trusted grader and the untrusted student process.

A message is one length-prefixed JSON document; tensors travel as {"t": dtype, "s": shape,
"b": base64 of the raw bytes} and come out as fresh, ordinary ``torch.Tensor`` objects, so
nothing the student process sends can carry code or behaviour (no pickle, no subclasses, no
``__torch_function__``). Python values travel as themselves (None, bool, int, float, str,
bytes, list, tuple, set, dict with str keys); anything else arrives as an :class:`Opaque` naming its
type. This module is also copied into the student's sandbox, so it imports only the standard
library and torch/numpy when a tensor is met.
"""
from __future__ import annotations

import base64
import json
import struct
import sys

MAX_MESSAGE = 256 * 2**20  # bytes; a longer message is a broken or hostile channel
MAX_DEPTH = 20  # nesting of lists / dicts
DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")


class Opaque:
    """Stands for a returned value the channel does not carry (its type name only)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


class ChannelError(Exception):
    """A message that does not decode: the student process broke the channel."""


def encode(value, memo: dict | None = None, depth: int = 0):
    """``value`` as JSON-ready data. Tensors met twice become {"ref": k} (aliasing survives)."""
    memo = {} if memo is None else memo
    if depth > MAX_DEPTH:
        return {"opaque": "deeply nested value"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return {"f": repr(float(value))}  # repr keeps nan / inf and every bit
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple, set, frozenset)):
        kind = {list: "list", tuple: "tuple"}.get(type(value), "set")
        items = sorted(value, key=repr) if kind == "set" else value
        return {kind: [encode(v, memo, depth + 1) for v in items]}
    if isinstance(value, dict):
        return {"dict": [[str(k), encode(v, memo, depth + 1)] for k, v in value.items()]}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if id(value) in memo:
            return {"ref": memo[id(value)][0]}
        memo[id(value)] = (len(memo), value)
        return tensor_data(value) | {"id": memo[id(value)][0], "g": bool(value.requires_grad)}
    spec = getattr(value, "__grader_task__", None)
    if spec is not None:
        return {"task": [spec[0], encode(spec[1], memo, depth + 1)]}
    if type(value).__name__ == "Problem":
        return {"problem": encode(dict(vars(value)), memo, depth + 1)}
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return encode(value.item(), memo, depth)
    return {"opaque": type(value).__name__}


def tensor_data(t) -> dict:
    """dtype, shape and bytes of a tensor (a subclass is read as a plain tensor)."""
    import torch

    t = torch.Tensor.detach(t).as_subclass(torch.Tensor).cpu()
    name = str(t.dtype).replace("torch.", "")
    if name not in DTYPES:
        raise TypeError(f"tensors of dtype {t.dtype} are not supported")
    raw = t.float() if name == "bfloat16" else t  # numpy has no bfloat16
    data = raw.contiguous().numpy().tobytes()
    return {"t": name, "s": list(t.shape), "b": base64.b64encode(data).decode("ascii")}


def decode(data, refs: dict | None = None, depth: int = 0, make_task=None):
    """The value that :func:`encode` produced ``data`` from; raises ChannelError on anything else."""
    refs = {} if refs is None else refs
    if depth > MAX_DEPTH:
        raise ChannelError("nested too deeply")
    if data is None or isinstance(data, (bool, str, int)):
        return data
    if not isinstance(data, dict) or len(data) == 0:
        raise ChannelError(f"unexpected {type(data).__name__}")
    if "t" in data:
        t = _tensor(data)
        if "id" in data:
            refs[data["id"]] = t
        return t
    ((kind, body),) = [(k, v) for k, v in data.items()] if len(data) == 1 else [(None, None)]
    if kind == "f" and isinstance(body, str):
        return float(body)
    if kind == "bytes" and isinstance(body, str):
        return base64.b64decode(body, validate=True)
    if kind in ("list", "tuple", "set") and isinstance(body, list):
        items = [decode(v, refs, depth + 1, make_task) for v in body]
        return {"list": list, "tuple": tuple, "set": set}[kind](items)
    if kind == "dict" and isinstance(body, list):
        return {str(k): decode(v, refs, depth + 1, make_task) for k, v in body}
    if kind == "ref" and body in refs:
        return refs[body]
    if kind == "opaque":
        return Opaque(str(body))
    if kind == "task" and make_task is not None:
        return make_task(body[0], decode(body[1], refs, depth + 1, make_task))
    if kind == "problem" and make_task is not None:
        return make_task("Problem", decode(body, refs, depth + 1, make_task))
    raise ChannelError(f"unknown value {str(data)[:80]}")


def _tensor(data: dict):
    import numpy as np
    import torch

    name, shape = data.get("t"), data.get("s")
    if name not in DTYPES or not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ChannelError("malformed tensor")
    raw = base64.b64decode(data.get("b", ""), validate=True)
    np_dtype = "float32" if name == "bfloat16" else ("bool_" if name == "bool" else name)
    array = np.frombuffer(raw, dtype=getattr(np, np_dtype)).copy()
    count = 1
    for n in shape:
        count *= n
    if array.size != count:
        raise ChannelError("tensor bytes do not match its shape")
    t = torch.from_numpy(array).reshape(shape)
    return t.to(torch.bfloat16) if name == "bfloat16" else t


# ----------------------------------------------------------------------------- framing


def send(fh, message: dict) -> None:
    body = json.dumps(message, allow_nan=False).encode("utf-8")
    fh.write(struct.pack(">Q", len(body)) + body)
    fh.flush()


def read_exactly(read, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = read(n)
        if not chunk:
            raise EOFError("the channel was closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def receive(read) -> dict:
    """One message; ``read(n)`` returns up to n bytes (b"" at the end)."""
    (size,) = struct.unpack(">Q", read_exactly(read, 8))
    if size > MAX_MESSAGE:
        raise ChannelError(f"message of {size} bytes")
    try:
        message = json.loads(read_exactly(read, size))
    except (ValueError, RecursionError) as exc:
        raise ChannelError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ChannelError("a message must be a JSON object")
    return message
