"""Leave the process without the interpreter's teardown, once a command is over.

After torch and transformers were imported, Python's final teardown (module globals cleared,
every object finalised one by one) takes 1.5-2 s on a 2-core machine: time a user waits after
the report is written and the last line printed, and a CI job pays on every command. Nothing
in it matters to a command that has finished: its files were written atomically and closed,
its journal fsynced and closed. So the command's exit handlers run (``atexit``: logging,
Ray's shutdown, ...), the standard streams are flushed, and the process ends with
``os._exit``. Where that could lose something (another thread still running, whose work
would be cut) the normal exit is taken.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_code(exc: SystemExit) -> int:
    """The status ``sys.exit`` would give for ``exc`` (printing its message when it is text)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``: exit handlers run and streams flushed, teardown skipped;
    a normal ``sys.exit`` while any other (non-daemon) thread is alive."""
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said on it
            pass
    os._exit(code)
