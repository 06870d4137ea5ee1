"""The data the judge and the solution's process exchange: plain values as one JSON line each.

Runs inside both sandboxed processes (standard library only; :mod:`qeval._sandbox_judged`
ships this source to them) and in the harness's tests. :func:`to_wire` turns a value
into JSON-able data; :func:`from_wire` builds a value back from such data and only
ever builds built-in types (``None``, ``bool``, ``int``, ``float``, ``complex``,
``str``, ``bytes``, ``bytearray``, ``list``, ``tuple``, ``dict``, ``set``,
``frozenset``, ``range`` and a list iterator), so nothing the sender chose (an
``__eq__`` that says yes to everything, a ``__del__``, a ``__hash__``) survives the
crossing. JSON arrays are lists; every other container is a one-key object naming
its type.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every sandboxed process's start
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MAX_LINE_BYTES = 8 * 1024 * 1024
"""Largest message either side reads; a longer one breaks the connection."""
MAX_ITEMS = 1_000_000
"""Most items taken from an iterator (a generator the solution returned) before giving up."""
_SMALL_INT = 2**63


class WireError(ValueError):
    """A value that cannot cross, or a message that is not one this protocol sends."""


def to_wire(value: Any) -> Any:
    """``value`` as JSON-able data. Subclasses of the built-in types cross as their base
    type (a namedtuple as a tuple, a Counter as a dict), iterators as the items they yield;
    anything else (a class instance, a function, a module) raises :class:`WireError`."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        value = int(value)
        return value if -_SMALL_INT < value < _SMALL_INT else {"n": format(value, "x")}  # no digit limit in hex
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    if isinstance(value, tuple):
        return {"t": [to_wire(v) for v in value]}
    if isinstance(value, dict):
        return {"d": [[to_wire(k), to_wire(v)] for k, v in value.items()]}
    if isinstance(value, frozenset):
        return {"fs": [to_wire(v) for v in value]}
    if isinstance(value, set):
        return {"s": [to_wire(v) for v in value]}
    if isinstance(value, bytearray):
        return {"ba": bytes(value).hex()}
    if isinstance(value, bytes):
        return {"b": bytes(value).hex()}
    if isinstance(value, complex):
        return {"c": [value.real, value.imag]}
    if isinstance(value, range):
        return {"r": [to_wire(value.start), to_wire(value.stop), to_wire(value.step)]}
    if hasattr(type(value), "__next__") and hasattr(type(value), "__iter__"):
        items: list[Any] = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                raise WireError(f"an iterator yielded more than {MAX_ITEMS} items")
            items.append(to_wire(item))
        return {"it": items}
    raise WireError(f"a {type(value).__name__} object cannot be sent between processes "
                    "(only None, bool, numbers, str, bytes and lists, tuples, dicts and sets of them)")


def from_wire(data: Any) -> Any:
    """The value ``data`` (decoded JSON) stands for, built from built-in types only."""
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if kind is list:
        return [from_wire(v) for v in data]
    if kind is not dict or len(data) != 1:
        raise WireError(f"not a wire value: {kind.__name__}")
    ((tag, payload),) = data.items()
    try:
        if tag == "t":
            return tuple(from_wire(v) for v in _array(payload))
        if tag == "d":
            return {from_wire(k): from_wire(v) for k, v in (_pair(p) for p in _array(payload))}
        if tag == "s":
            return {from_wire(v) for v in _array(payload)}
        if tag == "fs":
            return frozenset(from_wire(v) for v in _array(payload))
        if tag == "it":
            return iter([from_wire(v) for v in _array(payload)])
        if tag == "n":
            return int(_text(payload), 16)
        if tag == "b":
            return bytes.fromhex(_text(payload))
        if tag == "ba":
            return bytearray.fromhex(_text(payload))
        if tag == "c":
            real, imag = _pair(payload)
            return complex(_number(real), _number(imag))
        if tag == "r":
            start, stop, step = (from_wire(v) for v in _array(payload))
            return range(_integer(start), _integer(stop), _integer(step))
    except (TypeError, ValueError, OverflowError) as exc:  # unhashable keys, bad hex, step 0, ...
        raise WireError(f"bad {tag!r} value: {exc}") from None
    raise WireError(f"unknown wire tag {str(tag)[:20]!r}")


def _array(payload: Any) -> list[Any]:
    if type(payload) is not list:
        raise WireError("expected an array")
    return payload


def _pair(payload: Any) -> list[Any]:
    if type(payload) is not list or len(payload) != 2:
        raise WireError("expected a pair")
    return payload


def _text(payload: Any) -> str:
    if type(payload) is not str:
        raise WireError("expected a string")
    return payload


def _number(payload: Any) -> float:
    if type(payload) not in (int, float):
        raise WireError("expected a number")
    return float(payload)


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise WireError("expected an integer")
    return value


def send(fd: int, message: Any) -> None:
    """Write ``message`` (JSON-able) as one line to ``fd``."""
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()  # ASCII: no raw newline inside
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def receive(reader: BinaryIO) -> Any:
    """The next message on ``reader`` as decoded JSON (not yet :func:`from_wire`), ``None`` at end of stream.

    Raises :class:`WireError` for a line over :data:`MAX_LINE_BYTES`, a cut-off line or one that is not JSON.
    """
    line = reader.readline(MAX_LINE_BYTES + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise WireError(f"message over {MAX_LINE_BYTES} bytes or cut off")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not a message: {str(exc)[:100]}") from None
