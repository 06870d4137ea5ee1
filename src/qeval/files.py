"""Where qeval's outputs go (file names) and how they are written (atomically): a small base
module that the report, the journal, the environment probe and the cache all use, so none of
them imports another to write a file.

Atomic file writes: a crash mid-write never leaves a truncated file behind.

The content goes to a temporary file in the destination's own folder (so the
final rename stays on one filesystem), is flushed and fsynced, and then
``os.replace`` swaps it in. Readers see either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from qeval.errors import ReportError

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"
JOURNAL_FILE = "journal.jsonl"

_TMP_PREFIX = ".qeval-tmp-"


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only if the ``with`` block succeeds.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (bytes). On any exception the
    temporary file is removed, ``path`` is left as it was, and the exception
    propagates (``OSError`` becomes :class:`~qeval.errors.ReportError` naming the path).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX + target.name + ".", dir=target.parent)
        # mkstemp creates 0600; a report is an ordinary file: the mode open() would give it
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror or exc}. Check that the folder is writable.") from exc
    tmp = Path(tmp_name)
    try:
        opened = os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding=encoding, newline="\n")
        with opened as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, ReportError):
            raise ReportError(
                f"cannot write {target}: {exc.strerror or exc}. Check free space and permissions."
            ) from exc
        raise
    _fsync_dir(target.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) everywhere.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
