"""The target × suite table, shared by summary.md, report.html and the terminal.

Rows are plain strings, formatted once here so that the markdown, the page and the rich
table can never disagree. Each row leads with its suite's primary metric (as the suite
declared it, :class:`qeval.results.SuiteScoring`); the pass rate follows as a labelled column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

from qeval.metric_specs import ACCURACY, metric_value, scoring_of, suite_scoring
from qeval.results import CellResult, MetricValue, Percentiles, RunRecord, SuiteScoring

if TYPE_CHECKING:  # rich is imported lazily by render_console_table
    from rich.table import Table

MISSING = "—"
BYTES_PER_MB = 1_000_000

COLUMNS: tuple[str, ...] = (
    "target",
    "suite",
    "status",
    "primary metric [95% CI] n",
    "pass rate [95% CI]",
    "other metrics [95% CI]",
    "TTFT p95 ms (n)",
    "TPOT p50 ms (n)",
    "output tok/s",
    "weights MB",
    "peak mem MB",
)
"""Column headers, in order; ``TableRow.cells()`` follows the same order. Each suite's primary metric
(suite.yaml's ``primary_metric``: ``f1`` for extraction) leads; the pass rate (the share of cases
scored right as a whole, e.g. every entity exactly right) follows, labelled."""
COMPACT_COLUMNS: tuple[str, ...] = (
    "target", "suite", "status", "primary metric [95% CI] n", "pass rate [95% CI]", "TTFT p95 ms (n)",
)
"""The narrow table (the pytest plugin's terminal summary and slo.md); ``TableRow.compact()`` follows it."""
PASS_RATE_IS_PRIMARY = "(primary)"
"""The pass-rate cell of a suite whose primary metric is the pass rate itself."""


@dataclass(frozen=True)
class TableRow:
    """One (precision, suite) row, every value already formatted."""

    precision: str
    suite: str
    status: str
    """``ok``, or ``skipped: <reason>`` / ``failed: <reason>``."""
    primary: str
    """``f1 0.52 [0.40, 0.63] n=10``: the suite's primary metric, named, with its interval."""
    pass_rate: str
    """The pass rate (``accuracy``) with its interval, or :data:`PASS_RATE_IS_PRIMARY`."""
    metrics: str
    ttft_p95_ms: str
    tpot_p50_ms: str
    output_tokens_per_s: str
    weights_mb: str
    peak_mb: str
    ok: bool
    """Whether the cell ran (for styling only)."""

    def cells(self) -> tuple[str, ...]:
        """The values in :data:`COLUMNS` order."""
        return (
            self.precision,
            self.suite,
            self.status,
            self.primary,
            self.pass_rate,
            self.metrics,
            self.ttft_p95_ms,
            self.tpot_p50_ms,
            self.output_tokens_per_s,
            self.weights_mb,
            self.peak_mb,
        )

    def compact(self, status_width: int = 40) -> tuple[str, ...]:
        """The values in :data:`COMPACT_COLUMNS` order (a long status cut to ``status_width``)."""
        status = self.status if len(self.status) <= status_width else self.status[: status_width - 1].rstrip() + "…"
        return (self.precision, self.suite, status, self.primary, self.pass_rate, self.ttft_p95_ms)


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def fmt_rate(value: float | None, ci: Sequence[float] | None, n: int | None) -> str:
    """``0.45 [0.31, 0.60] n=40``; parts that are unknown are left out (``—`` if all are)."""
    if not _finite(value):
        return MISSING if not n else f"{MISSING} n={n}"
    digits = 3 if (n or 0) >= 1000 else 2
    text = f"{value:.{digits}f}"
    if ci is not None and len(ci) == 2 and _finite(ci[0]) and _finite(ci[1]):
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    if n is not None:
        text += f" n={n}"
    return text


def fmt_ms(value: float | None) -> str:
    """Milliseconds with precision that suits the magnitude."""
    if not _finite(value):
        return MISSING
    magnitude = abs(value)
    if magnitude < 10:
        return f"{value:.2f}"
    if magnitude < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_percentile(p: Percentiles | None, which: str) -> str:
    """``412 (n=8)`` for ``which`` in p50/p95/p99."""
    if p is None:
        return MISSING
    value = getattr(p, which)
    if not _finite(value):
        return MISSING if not p.n else f"{MISSING} (n={p.n})"
    return f"{fmt_ms(value)} (n={p.n})"


def fmt_mb(n_bytes: int | float | None) -> str:
    """Bytes as MB (10^6 bytes)."""
    if not _finite(n_bytes):
        return MISSING
    mb = n_bytes / BYTES_PER_MB
    return f"{mb:,.1f}" if mb < 1000 else f"{mb:,.0f}"


def fmt_number(value: float | None, digits: int = 1) -> str:
    if not _finite(value):
        return MISSING
    return f"{value:,.{digits}f}"


def fmt_metrics(metrics: dict[str, MetricValue] | None, cell_n: int) -> str:
    """``f1 0.52 [0.40, 0.63]; unparseable_rate 0.05`` (n shown only where it differs from the cell's)."""
    if not metrics:
        return MISSING
    parts = []
    for name, metric in metrics.items():
        n = metric.n if metric.n != cell_n else None
        value = fmt_rate(metric.value, metric.ci, n)
        parts.append(f"{name} {value}")
    return "; ".join(parts)


_PEAK_KIND_SHORT = {"cpu_rss": "rss", "cuda_allocated": "cuda", "unknown (remote endpoint)": "remote",
                    "server_rss": "server rss"}


def _shown_metrics(cell: CellResult, primary: str) -> dict[str, MetricValue]:
    """The cell's metrics but the primary one; ``error_rate`` only where a request can fail (an endpoint)
    or one did. Its ``n`` counts every case, errors included, so it is shown even when equal to the cell's."""
    metrics = {k: v for k, v in cell.metrics.items() if k != primary}
    errors = metrics.get("error_rate")
    remote = cell.precision_config.remote
    if errors is not None and not remote and not errors.value:
        del metrics["error_rate"]
    return metrics


BUSY_MARK = " (busy!)"
"""After a latency figure timed while the machine was busy with other work (see qeval.background)."""


def _status(cell: CellResult) -> str:
    if cell.status == "ok":
        return "ok"
    reason = (cell.reason or "no reason recorded").strip()
    return f"{cell.status}: {reason}"


def row_for(cell: CellResult, scoring: SuiteScoring | None = None) -> TableRow:
    """The formatted row of one cell; ``scoring``: its suite's (default: the cell's own, see
    :func:`qeval.metric_specs.scoring_of`)."""
    primary = (scoring or scoring_of(cell)).primary
    lat = cell.latency
    mem = cell.memory
    ran = cell.status == "ok"
    peak = MISSING
    if mem is not None and _finite(mem.peak_bytes):
        kind = _PEAK_KIND_SHORT.get(mem.peak_kind, mem.peak_kind)
        peak = f"{fmt_mb(mem.peak_bytes)} {kind}".strip()
    # timed while the machine was busy with other work: shown, marked, not evidence
    mark = BUSY_MARK if lat is not None and lat.background is not None and lat.background.busy else ""
    return TableRow(
        precision=cell.precision,
        suite=cell.suite,
        status=_status(cell),
        primary=_primary(cell, primary, ran),
        pass_rate=_pass_rate(cell, ran) if primary != ACCURACY or not ran else PASS_RATE_IS_PRIMARY,
        metrics=fmt_metrics(_shown_metrics(cell, primary), cell.n),
        ttft_p95_ms=fmt_percentile(lat.ttft_ms if lat else None, "p95") + mark,
        tpot_p50_ms=fmt_percentile(lat.tpot_ms if lat else None, "p50") + mark,
        output_tokens_per_s=fmt_number(lat.output_tokens_per_s if lat else None) + mark,
        weights_mb=fmt_mb(mem.weights_bytes if mem else None),
        peak_mb=peak,
        ok=ran,
    )


def _pass_rate(cell: CellResult, ran: bool) -> str:
    return fmt_rate(cell.accuracy, cell.accuracy_ci, cell.n) if ran or _finite(cell.accuracy) else MISSING


def _primary(cell: CellResult, name: str, ran: bool) -> str:
    mv = metric_value(cell, name)
    if mv is None or not (ran or _finite(mv.value)):
        return MISSING
    return f"{name} {fmt_rate(mv.value, mv.ci, mv.n)}"


def suite_scorings(record: RunRecord) -> dict[str, SuiteScoring]:
    """Each suite's scoring (its cells' stored one, else the older records' rules), suite order kept."""
    by_suite: dict[str, list[CellResult]] = {}
    for cell in record.cells:
        by_suite.setdefault(cell.suite, []).append(cell)
    return {suite: suite_scoring(cells) for suite, cells in by_suite.items()}


def metric_legend(record: RunRecord) -> list[str]:
    """One line per suite: what its primary metric and its pass rate are."""
    lines = []
    for suite, scoring in suite_scorings(record).items():
        primary, passing = scoring.primary_spec, scoring.spec(ACCURACY)
        text = f"{suite}: primary metric {primary.name} = {primary.label}"
        if primary.name != ACCURACY:
            text += f"; {passing.label}"
        lines.append(text)
    return lines


def ordered_cells(record: RunRecord) -> list[CellResult]:
    """Cells grouped by precision, then suite, each in order of first appearance."""
    precisions = list(dict.fromkeys(c.precision for c in record.cells))
    suites = list(dict.fromkeys(c.suite for c in record.cells))
    return sorted(record.cells, key=lambda c: (precisions.index(c.precision), suites.index(c.suite)))


def table_rows(record: RunRecord) -> list[TableRow]:
    """Every cell's row, grouped by precision then suite, each led by its suite's primary metric."""
    scorings = suite_scorings(record)
    return [row_for(cell, scorings[cell.suite]) for cell in ordered_cells(record)]


def render_console_table(record: RunRecord) -> Table:
    """The target × suite table as a ``rich.table.Table`` for the terminal."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"qeval run {record.run_id} — {record.model.name}", show_lines=False)
    numeric = {"TTFT p95 ms (n)", "TPOT p50 ms (n)", "output tok/s", "weights MB", "peak mem MB"}
    for header in COLUMNS:
        table.add_column(header, justify="right" if header in numeric else "left", overflow="fold")
    for row in table_rows(record):
        style = None if row.ok else ("yellow" if row.status.startswith("skipped") else "red")
        values = [Text(v) for v in row.cells()]  # Text: never parse '[...]' as rich markup
        values[2].stylize(style or "green")
        table.add_row(*values, style=None if row.ok else "dim")
    table.caption = "\n".join([
        *metric_legend(record),
        "pass rate: Wilson 95% interval; other metrics: case bootstrap; latency: batch 1, warm, n = timed requests",
    ])
    if any(BUSY_MARK in row.ttft_p95_ms for row in table_rows(record)):
        table.caption += f";{BUSY_MARK}: the machine was busy with other work while it was timed (not evidence)"
    return table
