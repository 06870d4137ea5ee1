"""Pure scorers, looked up by name from a suite's ``scorer:`` block.

Each scorer lives in its own private module; entries are lazy so that listing
names imports nothing heavy (scikit-learn, the sandbox).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qeval.registry import Registry
from qeval.scorers._base import Scorer

SCORERS: Registry[Callable[..., Scorer]] = Registry("scorer")
SCORERS.register("numeric", "qeval.scorers._numeric:NumericScorer")
SCORERS.register("exact", "qeval.scorers._exact:ExactScorer")
SCORERS.register("json_fields", "qeval.scorers._json_fields:JsonFieldsScorer")
SCORERS.register("entities", "qeval.scorers._entities:EntitiesScorer")
SCORERS.register("code_exec", "qeval.scorers._code_exec:CodeExecScorer")


def get_scorer(name: str, args: Mapping[str, Any] | None = None) -> Scorer:
    """Build the scorer registered as ``name`` with keyword ``args``.

    Raises :class:`~qeval.errors.UnknownNameError` (did-you-mean) for an unknown
    name and ``TypeError``/``ValueError`` for bad arguments.
    """
    factory = SCORERS.get(name)
    return factory(**dict(args or {}))


__all__ = ["SCORERS", "Scorer", "get_scorer"]
