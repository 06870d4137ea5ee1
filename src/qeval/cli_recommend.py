"""``qeval recommend``: read run folders (and their perf.json), pick a precision, write
recommendation.md / recommendation.json. The choice itself is :mod:`qeval.recommend`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qeval.cli_common import console, err_console, user_errors
from qeval.errors import ReportError, UsageError

if TYPE_CHECKING:
    from qeval.perf._schema import PerfRecord
    from qeval.recommend import Recommendation

PERF_FILE = "perf.json"
EXIT_NONE_MEETS = 1


def register(app: typer.Typer) -> None:
    """Add ``recommend`` to the qeval app."""
    app.command("recommend")(recommend)


def recommend(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (reports/<run-id>/); perf.json in them is used when present.")],
    slo: Annotated[list[str] | None, typer.Option("--slo", help="An SLO, e.g. 'p95_ttft_ms <= 300' or 'accuracy >= 0.8'; repeatable.")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(min=0.0, help="Largest allowed drop of each suite's primary metric (accuracy, or f1) vs --vs.")] = None,
    vs: Annotated[str | None, typer.Option(help="Reference precision for --max-accuracy-drop, e.g. bf16.")] = None,
    memory_budget_gb: Annotated[float | None, typer.Option(min=0.0, help="Rule out precisions whose peak (else weights) memory exceeds this many GB (10^9 bytes).")] = None,
) -> None:
    """Recommend the cheapest precision that meets every SLO on its 95% interval; exit 1 if none does."""
    user_errors(_recommend)(run_dirs, slo or [], max_accuracy_drop, vs, memory_budget_gb)


def _recommend(
    run_dirs: list[Path], slo_texts: list[str], max_drop: float | None, vs: str | None, budget_gb: float | None
) -> None:
    from qeval.gates import parse_slo
    from qeval.recommend import BYTES_PER_GB, Requirements, build_candidates, recommend
    from qeval.report._recommendation import write_recommendation

    if (max_drop is None) != (vs is None):
        given, missing = ("--max-accuracy-drop", "--vs") if vs is None else ("--vs", "--max-accuracy-drop")
        raise UsageError(f"{given} needs {missing} too, e.g. --max-accuracy-drop 0.02 --vs bf16.")
    req = Requirements(
        slos=tuple(parse_slo(t) for t in slo_texts), max_drop=max_drop, vs=vs,
        memory_budget_bytes=budget_gb * BYTES_PER_GB if budget_gb is not None else None,
    )
    cells, perfs, notes, records = [], [], [], []
    for folder in run_dirs:
        record, perf, note = load_run(folder)
        records.append((record, perf))
        cells.extend(record.cells)
        if perf is not None:
            perfs.append(perf)
        notes.extend(note)
    if not cells:
        raise UsageError(f"{run_dirs[0]}: the run has no cells to recommend from.")
    rec = recommend(build_candidates(cells, req, perfs), req.describe(), notes)
    md_path, json_path = write_recommendation(rec, run_dirs[0])
    written = [md_path, json_path]
    html_path = _rewrite_html(run_dirs[0], *records[0], rec)
    if html_path is not None:
        written.append(html_path)
    console.print(render_console(rec))
    console.print("Report: " + ", ".join(str(p) for p in written), highlight=False)
    if rec.chosen is None:
        raise typer.Exit(EXIT_NONE_MEETS)


def load_run(folder: Path) -> tuple[Any, PerfRecord | None, list[str]]:
    """The run record of ``folder``, its perf record (or ``None``) and notes on what was used."""
    from qeval.report import read_record

    if not Path(folder).is_dir():
        raise UsageError(f"{folder}: no such run folder. Pass a folder written by `qeval sweep` (reports/<run-id>/).")
    record = read_record(folder)
    perf = _load_perf(Path(folder))
    where = f"{folder}: latency SLOs decided on perf.json's goodput point" if perf else (
        f"{folder}: no perf.json; latency SLOs decided on the sweep's batch-1 timing")
    return record, perf, [where]


def _load_perf(run_dir: Path) -> PerfRecord | None:
    """``run_dir/perf.json`` as a PerfRecord, or ``None`` when the run has none.

    Uses ``qeval.perf.read_perf`` when that exists; otherwise validates the JSON
    against the agreed schema (``qeval.perf._schema``) directly."""
    path = run_dir / PERF_FILE
    if not path.is_file():
        return None
    try:
        from qeval.perf import read_perf
    except ImportError:
        return _read_perf_fallback(path)
    return read_perf(path)


def _read_perf_fallback(path: Path) -> PerfRecord:
    from pydantic import TypeAdapter, ValidationError

    from qeval.perf._schema import PERF_SCHEMA_VERSION, PerfRecord

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read it as JSON ({exc}); re-run `qeval perf` to rewrite it.") from exc
    if not isinstance(data, dict) or data.get("schema_version", PERF_SCHEMA_VERSION) != PERF_SCHEMA_VERSION:
        raise ReportError(f"{path}: not a perf.json of schema version {PERF_SCHEMA_VERSION}; re-run `qeval perf`.")
    try:
        return TypeAdapter(PerfRecord).validate_python(_unbounded(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ReportError(f"{path}: key {loc!r}: {first['msg']}; re-run `qeval perf` to rewrite it.") from exc


def _unbounded(value: Any, key: str = "") -> Any:
    # perf.json writes an interval bound the samples cannot support as null: it is ±inf.
    if isinstance(value, dict):
        return {k: _unbounded(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if (key == "ci" or key.endswith("_ci")) and len(value) == 2:
            return [-math.inf if value[0] is None else value[0], math.inf if value[1] is None else value[1]]
        return [_unbounded(v) for v in value]
    return value


def _rewrite_html(folder: Path, record: Any, perf: PerfRecord | None, rec: Recommendation) -> Path | None:
    """report.html again, now with perf.json's load profile and the recommendation; a failure
    here only costs the page (recommendation.md/json are already written)."""
    from qeval.report._html import HTML_FILE, write_html

    try:
        return write_html(record, Path(folder) / HTML_FILE, perf=perf, recommendation=rec)
    except Exception as exc:  # noqa: BLE001 - the page is a view of files already written
        err_console.print(f"warning: report.html was not rewritten ({type(exc).__name__}: {exc}).", highlight=False)
        return None


def render_console(rec: Recommendation):
    """The recommendation as a rich renderable (headline, table, frontier)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from qeval.report._recommendation import TABLE_COLUMNS, headline, table_rows

    table = Table(title="qeval recommend", show_lines=True)
    for col in TABLE_COLUMNS:
        table.add_column(col, overflow="fold")
    for row in table_rows(rec):
        values = [Text(v) for v in row]
        values[1].stylize({"recommended": "bold green", "meets every SLO": "green"}.get(row[1], "red"))
        table.add_row(*values)
    table.caption = "SLOs: " + ("; ".join(rec.slos) or "none")
    style = "bold green" if rec.chosen else "bold red"
    return Group(
        Text(headline(rec), style=style),
        table,
        Text("Pareto frontier (accuracy ↑, p95 TTFT ↓, memory ↓): " + (", ".join(rec.frontier) or "—")),
    )
