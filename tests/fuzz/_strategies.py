"""Hypothesis strategies shared by the fuzz tests: JSON values, and one-field mutations of valid records."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
"""Any JSON value (finite floats: strict JSON)."""


def key_paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested dicts and lists (the root excluded)."""
    paths: list[tuple] = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        paths.append((*prefix, key))
        paths.extend(key_paths(value, (*prefix, key)))
    return paths


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` with one value deleted, retyped (replaced by any JSON value), or one key added."""
    obj = copy.deepcopy(valid)
    paths = key_paths(obj)
    action = draw(st.sampled_from(("delete", "replace", "add")))
    if action == "add" or not paths:
        containers = [()] + [p for p in paths if isinstance(_get(obj, p), dict)]
        where = draw(st.sampled_from(containers))
        _get(obj, where)[draw(st.text(max_size=10))] = draw(json_values)
        return obj
    path = draw(st.sampled_from(paths))
    parent = _get(obj, path[:-1])
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return obj


def _get(obj: Any, path: tuple) -> Any:
    for part in path:
        obj = obj[part]
    return obj
