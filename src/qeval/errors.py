"""The qeval error hierarchy.

Every error a user can cause descends from :class:`QevalError` and also from the
builtin it resembles, so ``except ValueError`` keeps working for callers that do
not know qeval. The CLI prints ``str(error)`` (one paragraph: what, where, how
to fix) and exits with code 2; it never shows a traceback for these.
"""

from __future__ import annotations


class QevalError(Exception):
    """Base class of every error qeval raises on purpose."""


class UsageError(QevalError, ValueError):
    """A flag, option or argument has a value that cannot work."""


class UnknownNameError(QevalError, KeyError):
    """A registry lookup (precision, scorer, suite) named something that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SuiteError(QevalError, ValueError):
    """suite.yaml or cases.jsonl is malformed; the message names file, line and key."""


class ModelError(QevalError, OSError):
    """A model spec cannot be resolved or loaded."""


class BackendUnavailable(QevalError, ImportError):
    """A precision's library or hardware is missing on this machine.

    Carries ``reason``: the text recorded in the report when the cell is skipped.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReportError(QevalError, OSError):
    """A report cannot be written or read."""
