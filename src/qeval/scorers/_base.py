"""The scorer protocol: a pure function from (completion, expected) to a Score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from qeval.results import MetricSpec, MetricValue, Score


@runtime_checkable
class Scorer(Protocol):
    """Scores one completion against a case's ``expected`` value.

    ``score`` is pure and never raises on model output: unparseable text is a
    failed :class:`Score` with a ``reason``. ``aggregate`` returns suite-level
    extra metrics (95% intervals from :mod:`qeval.stats`); it may return ``{}``.
    """

    name: str
    metric_specs: tuple[MetricSpec, ...]
    """Every metric of a suite it scores, declared once: ``accuracy`` (what passing a case means)
    and each key ``aggregate`` returns, with its direction and paired test (:mod:`qeval.metric_specs`)."""
    metric_names: tuple[str, ...]
    """The keys ``aggregate`` returns, known before anything is scored (``metric_specs`` less ``accuracy``)."""

    def score(self, completion: str, expected: Any) -> Score: ...

    def aggregate(self, scores: Sequence[Score]) -> dict[str, MetricValue]: ...


def fail(reason: str, value: float = 0.0, **details: Any) -> Score:
    """A failed score with a reason (shared shorthand for the scorers)."""
    return Score(value=value, passed=False, reason=reason, details=details)
