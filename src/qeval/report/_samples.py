"""samples.jsonl: one JSON line per (precision, case) of the accuracy pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qeval.errors import ReportError
from qeval.files import atomic_open
from qeval.report._json import SAMPLES_FILE, jsonable
from qeval.results import RunRecord

SAMPLE_KEYS = (
    "precision",
    "suite",
    "case_id",
    "prompt",
    "completion",
    "expected",
    "score",
    "passed",
    "reason",
    "output_tokens",
    "tags",
    "details",
)
"""The keys of every line, in order."""


def sample_rows(record: RunRecord) -> Iterator[dict[str, Any]]:
    """One strict-JSON-ready dict per case, cells in record order."""
    for cell in record.cells:
        for case in cell.cases:
            row = {
                "precision": cell.precision,
                "suite": cell.suite,
                "case_id": case.case_id,
                "prompt": case.prompt,
                "completion": case.completion,
                "expected": case.expected,
                "score": case.score,
                "passed": case.passed,
                "reason": case.reason,
                "output_tokens": case.output_tokens,
                "tags": case.tags,
                "details": case.details,
            }
            if case.error is not None:  # an endpoint request that failed for good
                row["error"] = case.error
            if case.attempts != 1:
                row["attempts"] = case.attempts
            yield jsonable(row)


def write_samples(record: RunRecord, path: str | Path) -> Path:
    """Write ``samples.jsonl`` for ``record`` to ``path`` atomically; return the path."""
    with atomic_open(path, "w") as handle:
        for row in sample_rows(record):
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False))
            handle.write("\n")
    return Path(path)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Read ``samples.jsonl`` (or the run folder holding one); errors name file and line."""
    return [row for _, row in read_samples_numbered(path)]


def read_samples_numbered(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` of each row of ``samples.jsonl`` (or the run folder holding one)."""
    target = Path(path)
    if target.is_dir():
        target = target / SAMPLES_FILE
    fix = "The file is damaged or was not written by qeval; re-run the sweep to regenerate it."
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ReportError(f"{target}: cannot read it ({exc.strerror or exc}). Check that it is a readable file.") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise ReportError(f"{target}:{bad_line}: not valid UTF-8 (byte {data[exc.start]:#04x}). {fix}") from None
    rows = []
    # "\n" only, as JSON Lines does: str.splitlines() would also split inside a string holding U+2028
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{target}:{lineno}: not valid JSON ({exc.msg}). {fix}") from exc
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[... nested too deep
            raise ReportError(f"{target}:{lineno}: unreadable JSON ({type(exc).__name__}: {exc}). {fix}") from None
        if not isinstance(row, dict):
            raise ReportError(f"{target}:{lineno}: expected a JSON object per line, found {type(row).__name__}. {fix}")
        rows.append((lineno, row))
    return rows
