"""Scripted model sources for the Ray tests (shipped to the workers by value, as a project's own
``module:attr`` model would be)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.fakes import right_except_int4_on_odd


@dataclass(frozen=True)
class DieOnce:
    """Answers like ``right_except_int4_on_odd``, but the first process to answer for ``precision``
    dies on the spot (``os._exit``: no exception, no cleanup, as an OOM kill), leaving ``marker``."""

    marker: str
    precision: str

    def __call__(self, prompt: str, precision: str) -> str:
        if precision == self.precision and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return right_except_int4_on_odd(prompt, precision)


@dataclass(frozen=True)
class AlwaysDie:
    """Every process that answers for ``precision`` dies: retries cannot save it."""

    precision: str

    def __call__(self, prompt: str, precision: str) -> str:
        if precision == self.precision:
            os._exit(1)
        return right_except_int4_on_odd(prompt, precision)


@dataclass(frozen=True)
class DieAfter:
    """Answers like ``right_except_int4_on_odd`` and logs each prompt answered for ``precision``
    (one line, prefixed by the process id, to ``log``); the first process to reach its ``after``-th
    such prompt dies there (after a pause, so that the batches it finished have been relayed)."""

    log: str
    precision: str
    after: int

    def __call__(self, prompt: str, precision: str) -> str:
        if precision == self.precision:
            log = Path(self.log)
            mine = [line for line in (log.read_text().splitlines() if log.exists() else [])
                    if line.startswith(f"{os.getpid()} ")]
            if len(mine) == self.after and not Path(f"{self.log}.died").exists():
                Path(f"{self.log}.died").write_text(str(os.getpid()))
                import time

                time.sleep(1.0)
                os._exit(1)
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {prompt!r}\n")
        return right_except_int4_on_odd(prompt, precision)


class Notes:
    """A reporter that keeps what the sweep says (``note``) and ignores progress bars."""

    def __init__(self):
        self.lines = []

    def task(self, description, total):
        pass

    def advance(self, n=1):
        pass

    def note(self, text):
        self.lines.append(text)
