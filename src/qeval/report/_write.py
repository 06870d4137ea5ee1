"""write_report: every report file of one run into ``out_dir/<run_id>/``."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Protocol

from qeval.errors import ReportError
from qeval.files import atomic_write_text
from qeval.report._calibration import CALIBRATION_FILE, sensitivity
from qeval.report._html import HTML_FILE, write_html
from qeval.report._json import RESULTS_FILE, SAMPLES_FILE, jsonable, write_results
from qeval.report._markdown import SUMMARY_FILE, write_summary
from qeval.report._plots import write_plots
from qeval.report._samples import write_samples
from qeval.results import RunRecord


class ReportWarning(UserWarning):
    """A non-essential part of a report (a plot) could not be written."""


_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _HasRunId(Protocol):
    """A record written into its own run folder: a :class:`RunRecord` or a ``PerfRecord``."""

    @property
    def run_id(self) -> str: ...


def run_dir(record: _HasRunId, out_dir: str | Path) -> Path:
    """``out_dir/<run_id>``; refuses run ids that are not a single safe folder name."""
    if not _SAFE_RUN_ID.fullmatch(record.run_id or "") or record.run_id in (".", ".."):
        raise ReportError(
            f"run id {record.run_id!r} cannot be a folder name: use letters, digits, '.', '_' and '-' "
            "only, starting with a letter or digit (e.g. 20250101-120000-smollm2)."
        )
    return Path(out_dir) / record.run_id


def write_report(record: RunRecord, out_dir: str | Path, *, views: bool = True) -> Path:
    """Write results.json, samples.jsonl, summary.md, report.html and the PNG plots into ``out_dir/<run_id>/``.

    Every file is written atomically. results.json is written last, so a run
    folder with a results.json is complete. A plot that cannot be drawn gives a
    :class:`ReportWarning` instead of an error. ``views=False`` skips the plots and
    report.html (drawing them takes seconds; a sweep rewrites its report after every
    precision and draws them once, at the end). Returns the run folder.
    """
    folder = run_dir(record, out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create report folder {folder}: {exc.strerror or exc}.") from exc
    write_samples(record, folder / SAMPLES_FILE)
    write_summary(record, folder / SUMMARY_FILE)
    if views:
        _write_views(record, folder)
    spread = sensitivity(record)
    if spread["pairs"] or spread["seed_spread"]:
        atomic_write_text(folder / CALIBRATION_FILE, json.dumps(jsonable(spread), indent=1, ensure_ascii=False) + "\n")
    write_results(record, folder / RESULTS_FILE)
    return folder


def _write_views(record: RunRecord, folder: Path) -> None:
    try:
        write_plots(record, folder)
    except Exception as exc:  # noqa: BLE001 - a plot must never cost the run its results.json
        warnings.warn(
            f"qeval: plots for run {record.run_id} were not written ({type(exc).__name__}: {exc}); "
            "results.json, samples.jsonl and summary.md are complete.",
            ReportWarning,
            stacklevel=3,
        )
    try:
        write_html(record, folder / HTML_FILE)
    except Exception as exc:  # noqa: BLE001 - the HTML page is a view; results.json must still land
        warnings.warn(
            f"qeval: report.html for run {record.run_id} was not written ({type(exc).__name__}: {exc}); "
            "results.json, samples.jsonl and summary.md are complete.",
            ReportWarning,
            stacklevel=3,
        )
