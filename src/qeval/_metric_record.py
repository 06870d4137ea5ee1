"""What a suite's metrics mean: declared once by each scorer, carried in every cell of the run record.

A :class:`MetricSpec` says which way a metric is better and how two runs of it are compared on
the same cases; a :class:`SuiteScoring` adds the suite's ``primary_metric`` (suite.yaml) and its
default SLOs. Compare, measure, recommend, the tables and the calibration report read these
instead of lists of metric names. Records written before they existed (schema 1, and schema 2
before ``CellResult.scoring``) have none: :func:`qeval.metric_specs.scoring_of` falls back to the
rules qeval used then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "unknown"]
"""Which way the metric is better (``unknown``: a metric no scorer here declares)."""

Pairing = Literal["pass_fail", "micro_f1", "micro_precision", "micro_recall", "case_mean", "none"]
"""How two runs' values are compared on the cases both share:

- ``pass_fail``: each case's pass/fail: a paired score interval (Tango) and McNemar's exact p;
- ``micro_f1`` / ``micro_precision`` / ``micro_recall``: each case's (tp, fp, fn) counts: a paired
  case bootstrap of the difference of the micro statistic;
- ``case_mean``: each case's score in [0, 1]: a paired case bootstrap of the difference of means;
- ``none``: point values only (no paired test; a drop SLO cannot use it)."""

_PAIRING_WORDS: dict[str, str] = {
    "pass_fail": "paired on each case's pass/fail (Tango interval, McNemar p)",
    "micro_f1": "paired case bootstrap of the micro F1 from each case's tp/fp/fn",
    "micro_precision": "paired case bootstrap of the micro precision from each case's tp/fp/fn",
    "micro_recall": "paired case bootstrap of the micro recall from each case's tp/fp/fn",
    "case_mean": "paired case bootstrap of the mean case score",
    "none": "point values only",
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a suite, as its scorer declares it."""

    name: str
    """The key in ``CellResult.metrics`` (``accuracy`` is ``CellResult.accuracy``)."""
    label: str
    """What it is, for people: ``entity-level micro F1``, ``pass rate: every field right``."""
    direction: Direction = "higher"
    pairing: Pairing = "none"

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is, 0 when unknown."""
        return {"higher": 1, "lower": -1}.get(self.direction, 0)

    @property
    def paired(self) -> bool:
        """Whether a drop between two runs has a paired test (and a drop SLO can use it)."""
        return self.pairing != "none"

    @property
    def method(self) -> str:
        """How two runs of it are compared, in words."""
        return _PAIRING_WORDS[self.pairing]


@dataclass(frozen=True)
class SuiteScoring:
    """How a suite judges its cells: its primary metric, what each metric means, its own SLOs."""

    scorer: str
    """The scorer's registered name (``entities``, ``numeric``, ...)."""
    primary: str
    """suite.yaml's ``primary_metric``: what every table leads with and a drop gate defaults to."""
    metrics: tuple[MetricSpec, ...]
    """Every metric a cell of the suite has: ``accuracy`` (the pass rate), the scorer's aggregates,
    ``error_rate``."""
    slos: tuple[str, ...] = ()
    """suite.yaml's ``slos``, as written (the decision a report opens with uses them)."""

    def spec(self, name: str) -> MetricSpec:
        """The declared spec of ``name``, or one of unknown direction and no paired test."""
        for spec in self.metrics:
            if spec.name == name:
                return spec
        return MetricSpec(name, name, "unknown", "none")

    @property
    def primary_spec(self) -> MetricSpec:
        return self.spec(self.primary)


__all__ = ["Direction", "MetricSpec", "Pairing", "SuiteScoring"]
