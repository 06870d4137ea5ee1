"""results.json: the run record without its per-case lists (those go to samples.jsonl).

The JSON is strict: NaN and infinities become ``null``, so any JSON parser
(``jq``, JavaScript, Go) can read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qeval.errors import ReportError
from qeval.files import RESULTS_FILE, SAMPLES_FILE, atomic_open
from qeval.report._schema_v1 import READS_V1, upgrade_v1
from qeval.results import SCHEMA_VERSION, RunRecord, jsonable, to_dict



def results_dict(record: RunRecord) -> dict[str, Any]:
    """The ``results.json`` content of ``record``: ``to_dict`` minus each cell's ``cases``.

    Each cell gains ``n_samples`` (its lines in ``samples.jsonl``); the top level
    names the samples file. Key order: schema_version and identity first.
    """
    cells = []
    for cell in record.cells:
        data = to_dict(cell)
        data.pop("cases", None)
        data["n_samples"] = len(cell.cases)
        cells.append(data)
    out = {
        "schema_version": record.schema_version,
        "run_id": record.run_id,
        "created_at": record.created_at,
        "model": to_dict(record.model),
        "environment": to_dict(record.environment),
        "settings": to_dict(record.settings),
        "targets": to_dict(record.targets),
        "samples_file": SAMPLES_FILE,
        "cells": cells,
    }
    return jsonable(out)


def write_results(record: RunRecord, path: str | Path) -> Path:
    """Write ``results.json`` for ``record`` to ``path`` atomically; return the path."""
    data = results_dict(record)
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return Path(path)


def check_schema_version(
    data: dict[str, Any], target: Path, expected: int, label: str, regenerate: str, older: tuple[int, ...] = (),
) -> None:
    """A :class:`~qeval.errors.ReportError` unless ``data["schema_version"]`` is ``expected`` or one of
    the ``older`` versions still read (an int: ``true`` is not 1). ``label`` names the version
    ("perf schema_version"), ``regenerate`` how to write the file again."""
    version = data.get("schema_version")
    if version not in (expected, *older) or isinstance(version, bool):
        found = "no schema_version key" if "schema_version" not in data else f"schema_version {version!r}"
        reads = " or ".join(str(v) for v in (expected, *older))
        raise ReportError(
            f"{target}: has {found}, but this qeval reads {label} {reads}. "
            f"Read it with the qeval version that wrote it, or {regenerate}."
        )


def ends_inside_a_value(text: str) -> bool:
    """Whether ``text`` ends with a string still open or a ``{``/``[`` not yet closed.

    That is what a file cut short looks like wherever the cut falls (``json``'s
    error position alone does not say it: a cut inside ``1.5`` reports an
    unexpected ``.``, a cut inside a string reports its opening quote), while a
    whole document always ends with everything closed."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return in_string or depth > 0


def read_json_object(target: Path, what: str, missing: str, regenerate: str) -> dict[str, Any]:
    """The JSON object in ``target``, or a :class:`~qeval.errors.ReportError` saying what is wrong
    (missing, unreadable, not UTF-8, not JSON, cut short, not an object) and how to fix it.

    ``what`` names the kind of file ("a qeval results file"), ``missing`` says what to pass
    instead of a missing file, ``regenerate`` how to make the file again ("re-run the sweep")."""
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ReportError(f"{target}: no such file. {missing}") from exc
    except OSError as exc:
        raise ReportError(f"{target}: cannot read it ({exc.strerror or exc}). Check that it is a readable file.") from exc
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"{target}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}): the file is damaged or is "
            f"not {what}. {regenerate.capitalize()} to regenerate it."
        ) from None
    except ValueError as exc:  # a path the OS cannot take (embedded NUL byte)
        raise ReportError(f"{target!r}: not a usable path ({exc}). {missing}") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if not isinstance(exc, json.JSONDecodeError):  # a 5,000-digit number, [[[[... nested too deep
            raise ReportError(f"{target}: unreadable JSON ({type(exc).__name__}: {exc}); the file is damaged or is not "
                              f"{what}. {regenerate.capitalize()} to regenerate it.") from None
        truncated = exc.pos >= len(text.rstrip()) or ends_inside_a_value(text)
        damage = (
            "the file is cut short (truncated: written by a qeval without atomic writes, or damaged on disk)"
            if truncated else f"the file is damaged or is not {what}"
        )
        fix = (
            f"its run journal is beside it: `qeval sweep --resume {target.parent}` rebuilds the report from it"
            if target.name == RESULTS_FILE and (target.parent / "journal.jsonl").is_file()
            else f"{regenerate} to regenerate it"
        )
        raise ReportError(f"{target}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); {damage}. To fix: {fix}.") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{target}: expected a JSON object at the top level, found {type(data).__name__}: this is not "
                          f"{what}. {missing}")
    return data


def read_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` (or the run folder holding one) and check its schema version.

    A schema-1 file comes back in schema 2's shape (see :mod:`qeval.report._schema_v1`).
    Raises :class:`~qeval.errors.ReportError` saying what is wrong and what to
    do when the file is missing, is not JSON, or has another schema version.
    """
    target = Path(path)
    try:
        if target.is_dir():
            target = target / RESULTS_FILE
    except (OSError, ValueError):
        pass  # read_json_object names the unusable path
    data = read_json_object(
        target, "a qeval results file", f"Pass a run folder (reports/<run-id>/) or its {RESULTS_FILE}.", "re-run the sweep"
    )
    check_schema_version(data, target, SCHEMA_VERSION, "schema_version", "re-run the sweep to regenerate it",
                         older=(READS_V1,))
    if data["schema_version"] == READS_V1:
        data = upgrade_v1(data)
    if not isinstance(data.get("cells"), list):
        raise ReportError(f"{target}: key 'cells' must be a list of cell results: the file is damaged or was not "
                          "written by qeval. Re-run the sweep to regenerate it.")
    return data
