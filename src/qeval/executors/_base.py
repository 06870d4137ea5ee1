"""The executor interface, and the names the command line and the plugin accept."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from qeval.cell import Unit, UnitResult
from qeval.errors import UsageError
from qeval.options import EXECUTORS


class ExecutorError(UsageError):
    """An executor cannot be used as asked (Ray not installed, no cluster at the address)."""


class Executor(Protocol):
    """Runs units of work and yields each one's result as it finishes (in any order)."""

    def run(self, units: Sequence[Unit]) -> Iterator[UnitResult]: ...


def check_executor(name: str) -> str:
    """``name`` if it is a known executor; a ``ValueError`` naming the choices otherwise."""
    value = str(name).strip()
    if value not in EXECUTORS:
        raise ValueError(f"unknown executor {value!r}; use {' or '.join(EXECUTORS)}.")
    return value
