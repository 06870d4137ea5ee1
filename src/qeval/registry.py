"""One typed registry for everything looked up by name (precisions, scorers).

Entries may be given lazily as ``"module:attr"`` strings so that listing names
never imports a heavy backend. Unknown names raise :class:`UnknownNameError`
with a did-you-mean suggestion and the full list.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from qeval.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind; values may be lazy ``"module:attr"`` paths."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attr)
            self._entries[name] = entry
        return entry

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(self.names())
        return f"Unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {known}."
