"""The run journal: ``RUN_DIR/journal.jsonl``, an append-only log that makes a sweep resumable.

Why JSON lines and not SQLite: the journal is written by one process, only ever
appended to, and read once, front to back, on resume. One ``write`` of one line
followed by ``flush`` + ``os.fsync`` per record is durable, needs no schema, and
stays greppable with ``jq``; the only failure a kill can cause is a torn *last*
line, which :func:`read_journal` recognises and drops.

Records (one JSON object per line, key ``kind``):

``header``  first line: ``run_id``, ``created_at``, ``qeval_version``, the sweep
            ``config`` (as given), ``cwd`` (relative suite paths resolve against it),
            ``suite_hashes`` ({name: sha256}) and the ``model`` card.
``batch``   one finished accuracy-pass batch of one cell: ``label``, ``suite``,
            ``batch`` (index; boundaries are fixed by the batch size), ``cases``
            (CaseResult dicts), ``output_tokens``, ``wall_s``.
``cells``   one finished variant (precision label): every cell it produced, cases
            included, and the ``model`` card as it stood then.
``done``    the sweep finished; a journal with it cannot be resumed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from qeval.errors import QevalError
from qeval.files import JOURNAL_FILE
from qeval.results import CaseResult, CellResult, ModelCard, to_dict

_AFRESH = "Remove the line (losing that work) or start the sweep afresh."

_CASE = TypeAdapter(CaseResult)
_CELL = TypeAdapter(CellResult)
_CARD = TypeAdapter(ModelCard)


class JournalError(QevalError, ValueError):
    """A run journal is missing, damaged, or cannot be resumed."""


def _dumps(record: dict[str, Any]) -> str:
    from qeval.report._json import jsonable

    return json.dumps(jsonable(record), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Journal:
    """Appends records to ``path``; each record is one line, flushed and fsynced."""

    def __init__(self, path: str | Path, truncate_to: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_to is not None:
            # Drop a torn tail so the next record starts on a line of its own.
            with open(self.path, "r+b") as fh:
                fh.truncate(truncate_to)
                if truncate_to:
                    fh.seek(truncate_to - 1)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
        self._fh = open(self.path, "ab")  # noqa: SIM115 - held open for the whole sweep, closed by close()

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write((_dumps(record) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    # -- typed helpers -------------------------------------------------------------
    def batch(self, label: str, suite: str, index: int, cases, output_tokens: int, wall_s: float) -> None:
        self.append({
            "kind": "batch", "label": label, "suite": suite, "batch": index,
            "cases": [to_dict(c) for c in cases], "output_tokens": output_tokens, "wall_s": wall_s,
        })

    def cells(self, label: str, cells, model: ModelCard) -> None:
        self.append({"kind": "cells", "label": label, "cells": [to_dict(c) for c in cells], "model": to_dict(model)})

    def done(self) -> None:
        self.append({"kind": "done"})


@dataclass
class JournalState:
    """What a journal says about a run, as read back by :func:`read_journal`."""

    path: Path
    header: dict[str, Any]
    batches: dict[tuple[str, str], dict[int, tuple[tuple[CaseResult, ...], int, float]]] = field(default_factory=dict)
    """(label, suite) -> {batch index: (cases, output_tokens, wall_s)}."""
    cells: dict[str, tuple[CellResult, ...]] = field(default_factory=dict)
    """Finished variants: label -> its cells."""
    model: ModelCard | None = None
    done: bool = False
    valid_bytes: int = 0
    """Length of the well-formed prefix (a torn last line is past it)."""
    notes: list[str] = field(default_factory=list)


def read_journal(path: str | Path) -> JournalState:
    """Read a journal (or the run folder holding one).

    A last line that is cut short (no newline, not JSON: the process was killed
    mid-write) is dropped with a note; any other damage raises
    :class:`JournalError` naming ``file:line``.
    """
    target = Path(path)
    if target.is_dir():
        target = target / JOURNAL_FILE
    try:
        data = target.read_bytes()
    except FileNotFoundError as exc:
        raise JournalError(
            f"{target}: no run journal here. --resume takes the run folder of a sweep started by this "
            f"qeval version (reports/<run-id>/, holding {JOURNAL_FILE})."
        ) from exc
    except OSError as exc:
        raise JournalError(f"{target}: cannot read it ({exc.strerror or exc}). Check that it is a readable file.") from exc
    lines = data.split(b"\n")
    state: JournalState | None = None
    offset = 0
    for number, raw in enumerate(lines, start=1):
        last = number == len(lines)
        if last and raw == b"":
            break
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict) or "kind" not in rec:
                raise ValueError("not a journal record (a JSON object with a 'kind' key)")
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            if last:  # no newline after it: torn by a kill mid-write
                note = f"{target}:{number}: last line is incomplete (the run was killed while writing it); ignored."
                if state is None:
                    raise JournalError(note + " No header is left: start the sweep afresh.") from exc
                state.notes.append(note)
                break
            raise JournalError(
                f"{target}:{number}: damaged journal line ({exc}). Only the last line can be cut short by a "
                "kill; this is something else. Remove the line (losing that work) or start the sweep afresh."
            ) from exc
        kind = rec["kind"]
        where = f"{target}:{number}"
        try:
            if state is None:
                if kind != "header":
                    raise JournalError(f"{where}: the first record must be the run header, found {kind!r}. "
                                       "The journal lost its start: start the sweep afresh.")
                state = JournalState(path=target, header=rec)
            elif kind == "batch":
                cases = tuple(_CASE.validate_python(c) for c in rec["cases"])
                key = (rec["label"], rec["suite"])
                state.batches.setdefault(key, {})[int(rec["batch"])] = (
                    cases, int(rec["output_tokens"]), float(rec["wall_s"]))
            elif kind == "cells":
                state.cells[rec["label"]] = tuple(_CELL.validate_python(c) for c in rec["cells"])
                state.model = _CARD.validate_python(rec["model"])
            elif kind == "done":
                state.done = True
            elif kind == "header":
                raise JournalError(f"{where}: a second run header; the journal holds two runs. "
                                   "Remove the lines of one run, or start the sweep afresh.")
            else:
                raise JournalError(f"{where}: unknown record kind {kind!r} (written by a newer qeval?). "
                                   "Resume with the qeval version that started the run, or start the sweep afresh.")
        except (KeyError, TypeError, ValueError, OverflowError, ValidationError) as exc:
            if isinstance(exc, JournalError):
                raise
            raise JournalError(f"{where}: malformed {kind!r} record ({type(exc).__name__}: {exc}). {_AFRESH}") from exc
        offset += len(raw) + 1
    if state is None:
        raise JournalError(f"{target}: the journal is empty; start the sweep afresh.")
    state.valid_bytes = min(offset, len(data))
    return state
