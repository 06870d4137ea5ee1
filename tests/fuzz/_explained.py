"""The one property every fuzz test checks: bad input ends in an explained QevalError.

An input either loads, or raises :class:`~qeval.errors.QevalError` whose message
names the file (and, for line-based formats, ``file:LINE``) and says how to fix it.
Any other exception -- TypeError, KeyError, UnicodeDecodeError, a yaml or pydantic
error -- escapes the helper and fails the test with its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qeval.errors import QevalError

# Words of the "how to fix it" part of a message (imperatives the messages use).
FIX_WORDS = (
    "add", "ask", "change", "check", "delete", "fix", "give", "keep", "leave", "pass", "point", "put", "quote",
    "read it with", "re-download", "re-run", "re-save", "remove", "rename", "replace", "restore", "save", "see", "set",
    "start", "use", "write",
)
_FIX = re.compile(r"\b(" + "|".join(re.escape(w) for w in FIX_WORDS) + r")\b", re.IGNORECASE)
# Whole-file problems have no line to name.
WHOLE_FILE = re.compile(r"no cases|is empty|has no cases|file not found|not found|not a readable gzip|no such file")


def explained(load: Callable[[], Any], *, path: Path | str | None, lines: bool = False) -> Any:
    """``load()``'s value, or the :class:`QevalError` it raised after checking its message.

    ``path``: the file (or folder) the message must name; ``lines``: a line-based
    format, so the message must name ``path:LINE`` unless the problem is the whole file.
    """
    __tracebackhide__ = True
    try:
        return load()
    except QevalError as exc:
        check_message(str(exc), path=path, lines=lines)
        return exc


def check_message(message: str, *, path: Path | str | None, lines: bool = False) -> None:
    """Assert ``message`` says what (it is not empty), where (``path``[:LINE]) and how to fix it."""
    __tracebackhide__ = True
    assert message.strip(), "empty error message"
    assert "Traceback" not in message, message
    if path is not None:
        assert str(path) in message, f"message does not name {path}: {message}"
        if lines and not WHOLE_FILE.search(message):
            # `path` may be a folder: then `folder/suite.yaml:3` names the line
            assert re.search(re.escape(str(path)) + r"[^\s:]*:\d+", message), f"message names no line of {path}: {message}"
    assert _FIX.search(message), f"message says nothing about how to fix it: {message}"
