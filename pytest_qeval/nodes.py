"""Collection: a suite folder is a node, each precision a node under it, each SLO an item.

Node ids read ``suites/medical::int4::accuracy>=0.85``. With a baseline, each
precision also gets a ``no-regression-vs-baseline`` item.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_qeval.messages import verdict_message
from pytest_qeval.session import QevalSession, VerdictRow
from qeval.errors import QevalError
from qeval.gates import SLO, is_cost_metric, parse_slo

SESSION_KEY = pytest.StashKey[QevalSession]()
BASELINE_ITEM = "no-regression-vs-baseline"


class SloFailed(Exception):
    """An SLO item's verdict was fail (or inconclusive under --qeval-inconclusive=fail)."""


ERROR_RATE = "error_rate"
"""Every cell has it (qeval.runner.ERROR_RATE); named here so collection imports no runner."""


def slo_id(slo: SLO) -> str:
    return str(slo).replace(" ", "")


def suite_slos(suite: Any, session: QevalSession) -> list[SLO]:
    """The suite's SLOs: the command line's when any applies to this suite, else suite.yaml's.
    Each is checked now, so a typo fails at collection, not after an hour of evaluation."""
    options = session.options
    scoped = [s for s in options.slos if s.suite in (None, suite.name)]
    if scoped:
        slos, where = [s.slo for s in scoped], "--qeval-slo"
    else:
        where = f"{suite.path}/suite.yaml slos"
        slos = []
        for text in suite.slos:
            try:
                slos.append(parse_slo(text))
            except QevalError as exc:
                raise QevalError(f"{where}: {exc}") from None
    metrics = ("accuracy", *suite.scorer().metric_names, ERROR_RATE)
    for slo in slos:
        if not is_cost_metric(slo.metric) and slo.metric not in metrics:
            raise QevalError(
                f"{where}: SLO '{slo}' names metric {slo.metric!r}, which suite {suite.name!r} "
                f"(scorer {suite.scorer_name}) does not produce; it has {', '.join(metrics)} and the latency, "
                "throughput and memory metrics. Scope an SLO to one suite with 'SUITE: EXPR'."
            )
        if slo.reference == "baseline" and session.baseline is None:
            raise QevalError(f"{where}: SLO '{slo}' compares against the baseline: pass --qeval-baseline PATH.")
        if slo.reference not in (None, "baseline") and slo.reference not in options.precisions:
            raise QevalError(
                f"{where}: SLO '{slo}' compares against {slo.reference}, which is not in --qeval-precisions or --qeval-target "
                f"({','.join(options.precisions)}); add it."
            )
    return slos


class SuiteDirectory(pytest.Directory):
    """A folder holding suite.yaml."""

    def collect(self):
        session = self.config.stash[SESSION_KEY]
        try:
            suite = session.add_suite(self.path)
            slos = suite_slos(suite, session)
        except QevalError as exc:
            raise self.CollectError(str(exc)) from None
        if not slos and session.baseline is None:
            raise self.CollectError(
                f"{self.path}: no SLOs to check: add `slos:` to suite.yaml or pass --qeval-slo EXPR."
            )
        for precision in session.options.precisions:
            yield PrecisionNode.from_parent(self, name=precision, suite_name=suite.name, slos=slos)


class PrecisionNode(pytest.Collector):
    def __init__(self, *, suite_name: str, slos: list[SLO], **kw: Any) -> None:
        super().__init__(**kw)
        self.suite_name = suite_name
        self.slos = slos

    def collect(self):
        session = self.config.stash[SESSION_KEY]
        for slo in self.slos:
            if slo.reference == self.name:
                continue  # a precision against itself: nothing to check
            yield SloItem.from_parent(self, name=slo_id(slo), slo=slo)
        if session.baseline is not None:
            yield BaselineItem.from_parent(self, name=BASELINE_ITEM)


class _QevalItem(pytest.Item):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        parent = self.parent
        assert isinstance(parent, PrecisionNode), "qeval items are collected only under a PrecisionNode"
        self.suite_name = parent.suite_name
        self.precision = parent.name

    @property
    def qeval(self) -> QevalSession:
        return self.config.stash[SESSION_KEY]

    def _cell_or_skip(self, precision: str, role: str = "") -> Any:
        cell = self.qeval.cell(self.suite_name, precision)
        if cell.status == "skipped":
            self._record("skipped", message=f"{role}{precision} cannot run here: {cell.reason}")
            pytest.skip(f"{role}{precision} cannot run here: {cell.reason}")
        if cell.status == "failed":
            self._record("error", message=f"{role}{precision} failed: {cell.reason}")
            raise SloFailed(f"{role}{precision} failed on suite {self.suite_name}: {cell.reason}")
        return cell

    def _record(self, outcome: str, **kw: Any) -> VerdictRow:
        row = VerdictRow(
            nodeid=self.nodeid, suite=self.suite_name, precision=self.precision, slo=self.name, outcome=outcome,
            cached=(self.suite_name, self.precision) in self.qeval.cached, **kw,
        )
        self.qeval.verdicts.append(row)
        return row

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (SloFailed, QevalError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # Not the node id: pytest would rewrite the dots of a domain that ends the id
        # ("accuracy>=0.85") as "::" in -v output.
        return self.path, None, f"{self.suite_name} · {self.precision} · {self.name}"


class SloItem(_QevalItem):
    def __init__(self, *, slo: SLO, **kw: Any) -> None:
        super().__init__(**kw)
        self.slo = slo

    def runtest(self) -> None:
        from qeval.gates import decide
        from qeval.measure import MeasureError, for_slo

        slo, session = self.slo, self.qeval
        cell = self._cell_or_skip(self.precision)
        reference, note = None, ""
        if slo.reference == "baseline":
            reference, note = self._baseline_cell()
        elif slo.reference is not None:
            reference = self._cell_or_skip(slo.reference, role="reference ")
        try:
            m = for_slo(slo, cell, reference)
        except MeasureError as exc:
            self._record("error", message=str(exc))
            raise
        v = decide(slo, m.value, m.ci, m.n, m.min_n, m.unreliable)
        message = "; ".join([*m.notes, note] if note else m.notes)
        row = self._record(
            v.outcome, value=v.value, ci=v.ci, n=v.n, rule=v.rule, method=m.method, needed_n=v.needed_n,
            message=message, lost=m.lost, gained=m.gained,
        )
        for key, value in (("qeval_value", v.value), ("qeval_ci", v.ci), ("qeval_n", v.n), ("qeval_verdict", v.outcome)):
            self.user_properties.append((key, value))
        policy = session.options.inconclusive
        if v.outcome == "pass" or (v.outcome == "inconclusive" and policy == "pass"):
            return
        text = verdict_message(row, slo.reference, policy)
        if v.outcome == "inconclusive" and policy == "skip":
            pytest.skip("inconclusive: " + text.replace("\n", " | "))
        raise SloFailed(text)

    def _baseline_cell(self) -> tuple[Any, str]:
        from qeval.environment import fingerprint_differences

        session = self.qeval
        baseline = session.baseline
        assert baseline is not None, "suite_slos refuses a baseline SLO without --qeval-baseline"
        base = next((c for c in baseline.cells if c.suite == self.suite_name and c.precision == self.precision), None)
        if base is None or base.status != "ok":
            why = "has no cell" if base is None else f"has a {base.status} cell ({base.reason})"
            self._record("error", message=f"the baseline {why} for {self.suite_name} at {self.precision}")
            raise SloFailed(
                f"SLO {self.slo}: the baseline ({session.options.baseline}) {why} for suite {self.suite_name} at "
                f"{self.precision}; save a new baseline that includes it (--qeval-save-baseline)."
            )
        if is_cost_metric(self.slo.metric):
            diffs = fingerprint_differences(baseline.environment, session.environment)
            if diffs and not session.options.allow_env_mismatch:
                msg = (
                    f"SLO {self.slo}: refused to compare latency/throughput/memory with a baseline measured on a "
                    f"different environment ({'; '.join(diffs[:5])}). Re-measure the baseline here, or pass "
                    "--qeval-allow-env-mismatch to compare anyway."
                )
                self._record("error", message=msg)
                raise SloFailed(msg)
        hashes = baseline.settings.suite_hashes
        suite = session.suites[self.suite_name]
        note = ""
        if hashes.get(self.suite_name) not in (None, suite.content_hash):
            note = "the suite's files changed since the baseline; cases are paired by id"
        return base, note


class BaselineItem(_QevalItem):
    """Fails when the cell regressed against the baseline (see ``qeval compare``)."""

    def runtest(self) -> None:
        from dataclasses import replace

        from qeval.compare import compare_runs
        from qeval.report import render_comparison_text

        session = self.qeval
        cell = self._cell_or_skip(self.precision)
        record = session.record()
        assert record is not None, "the session holds the cell just evaluated"
        baseline = session.baseline
        assert baseline is not None, "a BaselineItem is collected only with --qeval-baseline"
        current = replace(record, cells=(cell,))
        base = replace(
            baseline,
            cells=tuple(c for c in baseline.cells if c.suite == self.suite_name and c.precision == self.precision),
        )
        cmp = compare_runs(base, current, allow_env_mismatch=session.options.allow_env_mismatch)
        self._record("fail" if cmp.regressed else "pass", message="; ".join(cmp.regressions))
        if cmp.regressed:
            raise SloFailed(render_comparison_text(cmp))
