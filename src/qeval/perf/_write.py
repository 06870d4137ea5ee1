"""perf.json and perf.md: writing them atomically, and reading perf.json back.

perf.json is strict JSON (``qeval.report._json.jsonable``): an infinite interval
bound is written as ``null`` and read back as ``-inf`` (lower) or ``inf`` (upper).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from qeval.errors import ReportError
from qeval.perf._markdown import render_perf_markdown
from qeval.perf._schema import PERF_SCHEMA_VERSION, PerfRecord
from qeval.files import atomic_open, atomic_write_text
from qeval.report._json import check_schema_version, jsonable, read_json_object

PERF_FILE = "perf.json"
PERF_MARKDOWN = "perf.md"
_RECORD = TypeAdapter(PerfRecord)


def perf_dict(record: PerfRecord) -> dict[str, Any]:
    """The strict-JSON form of ``record``."""
    return jsonable(record)


def write_perf(record: PerfRecord, folder: str | Path) -> Path:
    """Write perf.md then perf.json into ``folder`` (created if needed); return the folder.

    perf.json goes last, so a folder with a perf.json has a complete perf.md too.
    """
    folder = Path(folder)
    atomic_write_text(folder / PERF_MARKDOWN, render_perf_markdown(record))
    with atomic_open(folder / PERF_FILE, "w") as handle:
        json.dump(perf_dict(record), handle, indent=1, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return folder


def keep_earlier(folder: str | Path) -> Path | None:
    """Move an earlier perf.json/perf.md in ``folder`` aside, to ``perf.<stamp>.json``/``.md``, so a
    second ``qeval perf --into`` never destroys the first profile. ``<stamp>`` is the earlier file's
    modification time (UTC, ``20261123T070548Z``), with ``-2``, ``-3``... if that name is taken.

    Returns the earlier perf.json's new path, or ``None`` when there was none."""
    from datetime import datetime, timezone

    folder = Path(folder)
    earlier = folder / PERF_FILE
    if not earlier.exists():
        return None
    stamp = datetime.fromtimestamp(earlier.stat().st_mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem, n = f"perf.{stamp}", 1
    while (folder / f"{stem}.json").exists() or (folder / f"{stem}.md").exists():
        n += 1
        stem = f"perf.{stamp}-{n}"
    if (folder / PERF_MARKDOWN).exists():
        (folder / PERF_MARKDOWN).replace(folder / f"{stem}.md")
    earlier.replace(folder / f"{stem}.json")
    return folder / f"{stem}.json"


def _restore_infinities(value: Any, key: str = "") -> Any:
    """Put back the infinities strict JSON stored as null: interval bounds, and the rate of a
    ``--rate inf`` level (with the offered rate of its points)."""
    if isinstance(value, dict):
        out = {k: _restore_infinities(v, k) for k, v in value.items()}
        if out.get("kind") == "rate" and "value" in out and out["value"] is None:
            out["value"] = math.inf  # a LoadLevel: --rate inf
        level = out.get("level")
        if isinstance(level, dict) and level.get("value") == math.inf and out.get("offered_requests_per_s", 0) is None:
            out["offered_requests_per_s"] = math.inf
        return out
    if isinstance(value, list):
        if (key == "ci" or key.endswith("_ci")) and len(value) == 2:
            lo, hi = value
            return [-math.inf if lo is None else lo, math.inf if hi is None else hi]
        return [_restore_infinities(v, key) for v in value]
    return value


def read_perf(path: str | Path) -> PerfRecord:
    """Read a perf.json (or the run folder holding one) back into a frozen :class:`PerfRecord`.

    Raises :class:`~qeval.errors.ReportError` saying what is wrong and what to do when
    the file is missing, is not JSON, has another schema version or does not fit the schema.
    """
    target = Path(path)
    if target.is_dir():
        target = target / PERF_FILE
    data = read_json_object(
        target, "a qeval perf file", f"Pass a run folder that `qeval perf` wrote (or --into), or its {PERF_FILE}.",
        "re-run `qeval perf`",
    )
    check_schema_version(data, target, PERF_SCHEMA_VERSION, "perf schema_version", "re-run `qeval perf`",
                         older=(1,))
    try:
        return _RECORD.validate_python(_restore_infinities(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ReportError(
            f"{target}: key {loc!r}: {first['msg']}. The file is damaged or was not written by `qeval perf`; "
            "re-run it to regenerate the file."
        ) from exc
