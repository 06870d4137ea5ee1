"""The judge/solution wire format: plain values cross, nothing else does, and what comes out is built-in."""

from __future__ import annotations

import collections
import enum
import io
import json
import math
from typing import Any

import pytest

from qeval._sandbox_wire import MAX_LINE_BYTES, WireError, from_wire, receive, to_wire


def crossed(value: Any) -> Any:
    return from_wire(json.loads(json.dumps(to_wire(value))))


def builtin_only(value: Any) -> bool:
    kinds = (type(None), bool, int, float, complex, str, bytes, bytearray, range)
    if type(value) in (list, tuple, set, frozenset):
        return all(builtin_only(v) for v in value)
    if type(value) is dict:
        return all(builtin_only(k) and builtin_only(v) for k, v in value.items())
    return type(value) in kinds


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**63 - 1, 2**63, -(2**200), 10**5000, 1.5, -0.0, float("inf"), 1e-300, 3 - 4j,
    "", "héllo\nworld\u2028", "\udcff", b"\x00\xff", bytearray(b"ab"), [], [1, [2, [3]]], (), (1, ("a", None)),
    {}, {1: "a", (1, 2): [3], "k": {"n": 1}}, {1, 2, (3, 4)}, frozenset({"x"}), range(1, 10, 3),
    {"t": [1]},  # a dict that looks like a tag still crosses as that dict
], ids=lambda v: type(v).__name__)
def test_plain_values_cross_unchanged(value: Any) -> None:
    out = crossed(value)
    assert out == value and type(out) is type(value) and builtin_only(out)


def test_nan_and_identity_of_singletons() -> None:
    assert math.isnan(crossed(float("nan")))
    assert crossed(True) is True and crossed(None) is None


def test_subclasses_cross_as_their_base_type() -> None:
    class Color(enum.IntEnum):
        RED = 1

    class Loud(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    point = collections.namedtuple("point", "x y")(1, 2)
    for value, expected in [(Color.RED, 1), (Loud("no"), "no"), (point, (1, 2)),
                            (collections.Counter("aab"), {"a": 2, "b": 1}),
                            (collections.OrderedDict(a=1), {"a": 1})]:
        out = crossed(value)
        assert out == expected and type(out) is type(expected)
    assert crossed(Loud("no")) != "yes"  # the __eq__ stayed behind


def test_iterators_cross_as_list_iterators() -> None:
    out = crossed(map(str, [1, 2]))
    assert type(out) is type(iter([])) and list(out) == ["1", "2"]
    assert crossed(x for x in range(3)) != [0, 1, 2]  # an iterator is not a list, as in one process


@pytest.mark.parametrize("value", [object(), lambda: 1, math, type, [1, object()], {1: {2: len}}], ids=lambda v: type(v).__name__)
def test_other_objects_do_not_cross(value: Any) -> None:
    with pytest.raises(WireError):
        to_wire(value)


@pytest.mark.parametrize("data", [
    {"x": 1}, {"t": 1}, {"t": [], "s": []}, {"d": [[1]]}, {"d": [[[1], 2]]}, {"s": [[1]]}, {"n": 5}, {"n": "zz"},
    {"b": "zz"}, {"ba": 1}, {"r": [1, 2, 0]}, {"r": [1.5, 2, 1]}, {"c": ["a", 1]}, {"it": {}}, {"d": [{"n": "1"}]},
], ids=lambda v: type(v).__name__)
def test_malformed_wire_data_is_rejected(data: Any) -> None:
    with pytest.raises(WireError):
        from_wire(data)


def test_receive_limits() -> None:
    assert receive(io.BytesIO(b"")) is None
    assert receive(io.BytesIO(b'{"a": [1, 2]}\n')) == {"a": [1, 2]}
    for bad in (b'{"a": 1}', b"x" * (MAX_LINE_BYTES + 10) + b"\n", b"[" * 100_000 + b"\n",
                b"9" * 100_000 + b"\n", b"\xff\xfe\n", b"{'a': 1}\n"):
        with pytest.raises(WireError):
            receive(io.BytesIO(bad))
