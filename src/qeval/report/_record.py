"""A whole run record as one JSON file (cases included), and reading any stored run back.

This is the format of ``--qeval-save-baseline`` files and of the plugin's cell
cache. :func:`read_record` also accepts a sweep's run folder (``results.json``
plus ``samples.jsonl``), so ``qeval compare`` works on either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from qeval.errors import ReportError
from qeval.files import atomic_open
from qeval.report._json import RESULTS_FILE, SAMPLES_FILE, jsonable, read_results
from qeval.report._samples import read_samples_numbered
from qeval.results import CellResult, RunRecord, to_dict

_RECORD = TypeAdapter(RunRecord)
_CELL = TypeAdapter(CellResult)


def record_dict(record: RunRecord) -> dict[str, Any]:
    """Strict-JSON form of the whole record, per-case results included."""
    return jsonable(to_dict(record))


def write_record(record: RunRecord, path: str | Path) -> Path:
    """Write the whole record (cases included) to one JSON file, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(record_dict(record), handle, indent=1, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return Path(path)


def record_from_dict(data: dict[str, Any], where: str = "record") -> RunRecord:
    """Rebuild a frozen :class:`RunRecord` from its JSON form (extra keys are ignored)."""
    return _validate(_RECORD, data, where)


def cell_from_dict(data: dict[str, Any], where: str = "cell") -> CellResult:
    """Rebuild one frozen :class:`CellResult` from its JSON form (a schema-1 cell's too)."""
    from qeval.report._schema_v1 import upgrade_cell_v1

    return _validate(_CELL, upgrade_cell_v1(data), where)


def _validate(adapter: TypeAdapter, data: Any, where: str, where_of: Callable[[tuple], str | None] | None = None) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        place = (where_of(tuple(first["loc"])) if where_of else None) or where
        raise ReportError(
            f"{place}: key {loc!r}: {first['msg']}. The file is damaged or was not written by qeval; "
            "re-run to regenerate it."
        ) from exc


def read_record(path: str | Path) -> RunRecord:
    """Read a stored run: a record file (``write_record``), a ``results.json``, or a run folder.

    For ``results.json`` the per-case results come from ``samples.jsonl`` beside it
    when present; without it, cells have no cases (paired comparisons then say so).
    """
    target = Path(path)
    data = read_results(target)
    results_path = target / RESULTS_FILE if target.is_dir() else target
    cells = data["cells"]
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise ReportError(
                f"{results_path}: key 'cells.{i}': expected a JSON object (one cell result), found "
                f"{type(cell).__name__}. The file is damaged or was not written by qeval; re-run to regenerate it."
            )
    sample_lines: dict[tuple[int, int], str] = {}  # (cell, case) -> "samples.jsonl:LINE", for errors
    if cells and all("cases" not in c for c in cells):
        samples = results_path.parent / SAMPLES_FILE
        if samples.is_file():
            by_cell: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
            for lineno, row in read_samples_numbered(samples):
                case = {k: v for k, v in row.items() if k not in ("precision", "suite")}
                by_cell.setdefault((_key(row.get("precision")), _key(row.get("suite"))), []).append((lineno, case))
            for i, cell in enumerate(cells):
                rows = by_cell.get((_key(cell.get("precision")), _key(cell.get("suite"))), [])
                cell["cases"] = [case for _, case in rows]
                sample_lines.update({(i, j): f"{samples}:{lineno}" for j, (lineno, _) in enumerate(rows)})

    def where_of(loc: tuple) -> str | None:
        if len(loc) >= 4 and loc[0] == "cells" and loc[2] == "cases":
            return sample_lines.get((loc[1], loc[3]))
        return None

    return _validate(_RECORD, data, str(results_path), where_of)


def _key(value: Any) -> str:
    # samples are matched to cells on (precision, suite); a damaged row may hold any JSON there
    return value if isinstance(value, str) else repr(value)
