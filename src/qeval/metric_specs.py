"""Reading a cell's metric semantics: the stored :class:`~qeval.results.SuiteScoring`, or, for a
record written before cells carried one, the rules qeval used then. Pure; no I/O.

The semantics themselves are declared by the scorers (``metric_specs`` on each scorer class, see
:mod:`qeval.scorers`); a suite adds its ``primary_metric`` and SLOs (:meth:`qeval.suites.Suite.scoring`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from qeval._metric_record import MetricSpec, SuiteScoring
from qeval.results import CellResult, MetricValue

ACCURACY = "accuracy"

ERROR_RATE_SPEC = MetricSpec("error_rate", "share of requests that failed for good (timeouts, HTTP errors)", "lower")
"""Every cell has it (the runner adds it, whatever the scorer)."""


def pass_rate(label: str) -> MetricSpec:
    """The ``accuracy`` spec of a scorer: the share of cases that pass, ``label`` saying what passing means."""
    return MetricSpec(ACCURACY, f"pass rate: {label}", "higher", "pass_fail")


def share_spec(name: str, label: str) -> MetricSpec:
    """A rate of something bad (``unparseable_rate``, ``timeout_rate``): lower is better, point values only."""
    return MetricSpec(name, label, "lower", "none")


def aggregate_names(specs: Iterable[MetricSpec]) -> tuple[str, ...]:
    """The names a scorer's ``aggregate`` returns: every declared metric but the pass rate."""
    return tuple(s.name for s in specs if s.name != ACCURACY)


def metric_value(cell: CellResult, name: str) -> MetricValue | None:
    """The cell's value of ``name`` with its interval and n (``accuracy`` included); ``None`` if absent."""
    if name == ACCURACY:
        return MetricValue(cell.accuracy, cell.accuracy_ci, cell.n)
    return cell.metrics.get(name)


def scoring_of(cell: CellResult) -> SuiteScoring:
    """The cell's stored scoring, or the older records' rules applied to this one cell."""
    return cell.scoring if cell.scoring is not None else legacy_scoring([cell])


def suite_scoring(cells: Sequence[CellResult]) -> SuiteScoring:
    """The scoring of one suite's cells: the last one stored (the newer run's, when cells of two runs
    are given oldest first), else the older records' rules applied to all of them."""
    for cell in reversed(cells):
        if cell.scoring is not None:
            return cell.scoring
    return legacy_scoring(cells)


def spec_of(name: str, *cells: CellResult) -> MetricSpec:
    """What ``name`` means in the first of ``cells`` that declares it (unknown when none does)."""
    for cell in cells:
        scoring = scoring_of(cell)
        if any(s.name == name for s in scoring.metrics):
            return scoring.spec(name)
    return MetricSpec(name, name, "unknown", "none")


# --- records written before cells carried their scoring --------------------------------------


def legacy_primary(cells: Sequence[CellResult]) -> str:
    """``f1`` for a suite whose cells all have ``f1`` and per-case tp/fp/fn counts, else ``accuracy``:
    such records did not store suite.yaml's ``primary_metric``, and the F1 scorers are the ones that
    give ``f1`` with the per-case counts a paired F1 drop needs."""
    ok = [c for c in cells if c.status == "ok"]
    if ok and any(c.cases for c in ok) and all("f1" in c.metrics for c in ok) and all(
        all(k in case.details for k in ("tp", "fp", "fn")) for c in ok for case in c.cases
    ):
        return "f1"
    return ACCURACY


def declared_specs() -> dict[str, tuple[MetricSpec, ...]]:
    """Every registered scorer's name → the specs it declares."""
    from qeval.scorers import SCORERS

    return {name: tuple(getattr(SCORERS.get(name), "metric_specs", ())) for name in SCORERS}


def legacy_scoring(cells: Sequence[CellResult]) -> SuiteScoring:
    """What older records' cells meant, from the specs today's scorers declare for the same names.

    The scorer (and its pass-rate label) is named when exactly one registered scorer aggregates
    exactly the cells' metrics; a metric no scorer declares has unknown direction and no paired test."""
    names = list(dict.fromkeys(m for c in cells for m in c.metrics))
    declared = declared_specs()
    by_name: dict[str, MetricSpec] = {}
    for specs in declared.values():
        for spec in specs:
            by_name.setdefault(spec.name, spec)
    own = set(names) - {ERROR_RATE_SPEC.name}
    matches = [n for n, specs in declared.items() if set(aggregate_names(specs)) == own]
    scorer = matches[0] if len(matches) == 1 else "unknown"
    accuracy = next((s for s in declared.get(scorer, ()) if s.name == ACCURACY), pass_rate("share of cases that pass"))
    by_name[ERROR_RATE_SPEC.name] = ERROR_RATE_SPEC
    specs = (accuracy, *(by_name.get(n, MetricSpec(n, n, "unknown", "none")) for n in names))
    return SuiteScoring(scorer, legacy_primary(cells), specs)


__all__ = [
    "ACCURACY",
    "ERROR_RATE_SPEC",
    "MetricSpec",
    "SuiteScoring",
    "aggregate_names",
    "declared_specs",
    "legacy_primary",
    "legacy_scoring",
    "metric_value",
    "pass_rate",
    "scoring_of",
    "share_spec",
    "spec_of",
    "suite_scoring",
]
