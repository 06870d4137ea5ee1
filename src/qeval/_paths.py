"""Path checks that treat a name the OS refuses (too long, a NUL byte) as "not there".

pathlib raises ``OSError`` / ``ValueError`` for such names; every caller here wants
a plain "no such file" answer that it can turn into its own clear message.
"""

from __future__ import annotations

from pathlib import Path


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
