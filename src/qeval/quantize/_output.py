"""Send a library's terminal output to a log file for the duration of a block.

gptqmodel draws progress bars and per-layer tables straight onto the terminal
(through logbar, which holds on to the real stdout/stderr), interleaving them
with qeval's own progress. Redirecting the process's file descriptors 1 and 2
is the only switch that catches all of it; the text is kept in a log file
whose path the precision records.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[Path]:
    """Redirect fds 1 and 2 (and ``sys.stdout``/``sys.stderr``) into ``log_path`` (appended)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no real fds (an embedded interpreter): leave output alone
        yield log_path
        return
    with open(log_path, "ab", buffering=0) as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            with contextlib.redirect_stdout(_Text(log)), contextlib.redirect_stderr(_Text(log)):
                yield log_path
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class _Text:
    """A minimal text stream over a binary file (Python-level writes while redirected)."""

    def __init__(self, raw) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        self._raw.write(text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        self._raw.flush()

    def isatty(self) -> bool:
        return False


def tail(log_path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log (for an error message); empty when unreadable."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
