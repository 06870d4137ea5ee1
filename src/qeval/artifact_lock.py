"""One builder per cached artifact and machine: an exclusive ``fcntl.flock`` on a lock file on the
same storage as the artifact (a converted model, a quantized or served checkpoint in ``$QEVAL_CACHE``):
``$QEVAL_CACHE/KIND/NAME`` is locked through ``$QEVAL_CACHE/.locks/KIND--NAME.lock``, out of the
folders that list artifacts. Lock files stay (removing one while another process waits on it would
let a third take a second lock): they are empty.

Two Ray tasks on one node (or two sweeps on one machine) that need the same artifact would both
build it: minutes of CPU or GPU each, and the loser's rename would replace the winner's folder
under a reader. With the lock the second waits, then finds the artifact built and reuses it.
``flock`` is per open file and released when the holder dies (SIGKILL, OOM), so a crashed
builder never leaves a stale lock. On shared storage (NFS) ``flock`` may lock only per machine:
each node then builds at most once at a time, which is all the cache promises.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def lock_path(artifact: Path) -> Path:
    """``$QEVAL_CACHE/models/NAME`` → ``$QEVAL_CACHE/.locks/models--NAME.lock``."""
    return artifact.parent.parent / ".locks" / f"{artifact.parent.name}--{artifact.name}.lock"


@contextlib.contextmanager
def artifact_lock(artifact: Path | None, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the build lock of ``artifact`` (nothing when ``None``, or where ``fcntl`` is missing).

    ``waiting`` hears one line when another process holds the lock and this one has to wait."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    if artifact is None:
        yield
        return
    path = lock_path(Path(artifact))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(f"waiting for another process building {artifact} (lock {path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
