"""The local executor: every unit in this process, in order, as ``qeval sweep`` always ran them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from qeval.cell import Unit, UnitResult


class LocalExecutor:
    """Runs each unit with ``run_here`` (the sweep's own loaded targets, journal and Ctrl-C
    handling) after ``check`` (which raises to stop between units)."""

    def __init__(self, run_here: Callable[[Unit], UnitResult], check: Callable[[], None] = lambda: None) -> None:
        self._run_here = run_here
        self._check = check

    def run(self, units: Sequence[Unit]) -> Iterator[UnitResult]:
        for unit in units:
            self._check()  # a Ctrl-C during the last batch of the previous unit stops here
            yield self._run_here(unit)
