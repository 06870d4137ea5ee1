"""Fixtures for hand-written tests over qeval results. They need ``--qeval``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_qeval.nodes import SESSION_KEY


def _session(request: pytest.FixtureRequest) -> Any:
    session = request.config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip("qeval fixtures evaluate a model: run with --qeval (and --qeval-model ...).")
    return session


@pytest.fixture(scope="session")
def qeval_run(request: pytest.FixtureRequest) -> Callable[[str, str], Any]:
    """``qeval_run(suite, precision)`` → the frozen :class:`qeval.results.CellResult`.

    ``suite`` is a collected suite's name or a suite folder. The cell is shared with
    the SLO items and the cache: it is evaluated at most once.
    """
    session = _session(request)

    def run(suite: str, precision: str) -> Any:
        from qeval.quantize import get_precision

        get_precision(precision)
        return session.cell(session.suite_named(suite).name, precision)

    return run


@pytest.fixture(scope="session")
def qeval_model(request: pytest.FixtureRequest) -> Callable[[str], Any]:
    """``qeval_model(precision)`` → the loaded :class:`qeval.models.TextModel` (once per precision)."""
    session = _session(request)
    return session.model
