"""Where an engine's own virtualenv is found when the user names none: ``./VENV`` (the folder qeval
runs in), then ``VENV`` beside this checkout's ``pyproject.toml`` (an editable install: what the
Makefile builds)."""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path | None:
    """The checkout qeval runs from, when it is an editable install (``src/qeval/engines/``)."""
    here = Path(__file__).resolve()
    root = here.parents[3] if len(here.parents) > 3 else None
    return root if root is not None and (root / "pyproject.toml").exists() else None


def project_venv_python(venv: str) -> Path | None:
    """``VENV/bin/python`` in the current folder, then in the checkout; ``None`` when neither exists."""
    roots = [Path.cwd(), repo_root()]
    return next((p for r in roots if r is not None and (p := r / venv / "bin" / "python").exists()), None)


__all__ = ["project_venv_python", "repo_root"]
