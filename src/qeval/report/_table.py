"""The precision × suite table, shared by summary.md and the terminal.

Rows are plain strings, formatted once here so that the markdown and the rich
table can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

from qeval.results import CellResult, MetricValue, Percentiles, RunRecord

if TYPE_CHECKING:  # rich is imported lazily by render_console_table
    from rich.table import Table

MISSING = "—"
BYTES_PER_MB = 1_000_000

COLUMNS: tuple[str, ...] = (
    "target",
    "suite",
    "status",
    "accuracy [95% CI] n",
    "other metrics [95% CI]",
    "TTFT p95 ms (n)",
    "TPOT p50 ms (n)",
    "output tok/s",
    "weights MB",
    "peak mem MB",
)
"""Column headers, in order; ``TableRow.cells()`` follows the same order."""


@dataclass(frozen=True)
class TableRow:
    """One (precision, suite) row, every value already formatted."""

    precision: str
    suite: str
    status: str
    """``ok``, or ``skipped: <reason>`` / ``failed: <reason>``."""
    accuracy: str
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
            self.accuracy,
            self.metrics,
            self.ttft_p95_ms,
            self.tpot_p50_ms,
            self.output_tokens_per_s,
            self.weights_mb,
            self.peak_mb,
        )


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


_PEAK_KIND_SHORT = {"cpu_rss": "rss", "cuda_allocated": "cuda", "unknown (remote endpoint)": "remote"}


def _shown_metrics(cell: CellResult) -> dict[str, MetricValue]:
    """The cell's metrics; ``error_rate`` only where a request can fail (an endpoint) or one did.
    Its ``n`` counts every case, errors included, so it is shown even when equal to the cell's."""
    metrics = dict(cell.metrics)
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


def row_for(cell: CellResult) -> TableRow:
    """The formatted row of one cell."""
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
        accuracy=fmt_rate(cell.accuracy, cell.accuracy_ci, cell.n) if ran or _finite(cell.accuracy) else MISSING,
        metrics=fmt_metrics(_shown_metrics(cell), cell.n),
        ttft_p95_ms=fmt_percentile(lat.ttft_ms if lat else None, "p95") + mark,
        tpot_p50_ms=fmt_percentile(lat.tpot_ms if lat else None, "p50") + mark,
        output_tokens_per_s=fmt_number(lat.output_tokens_per_s if lat else None) + mark,
        weights_mb=fmt_mb(mem.weights_bytes if mem else None),
        peak_mb=peak,
        ok=ran,
    )


def ordered_cells(record: RunRecord) -> list[CellResult]:
    """Cells grouped by precision, then suite, each in order of first appearance."""
    precisions = list(dict.fromkeys(c.precision for c in record.cells))
    suites = list(dict.fromkeys(c.suite for c in record.cells))
    return sorted(record.cells, key=lambda c: (precisions.index(c.precision), suites.index(c.suite)))


def table_rows(record: RunRecord) -> list[TableRow]:
    """Every cell's row, grouped by precision then suite."""
    return [row_for(cell) for cell in ordered_cells(record)]


def render_console_table(record: RunRecord) -> Table:
    """The precision × suite table as a ``rich.table.Table`` for the terminal."""
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
    table.caption = "accuracy: pass rate with Wilson 95% interval; latency: batch 1, warm, n = timed requests"
    if any(BUSY_MARK in row.ttft_p95_ms for row in table_rows(record)):
        table.caption += f";{BUSY_MARK}: the machine was busy with other work while it was timed (not evidence)"
    return table
