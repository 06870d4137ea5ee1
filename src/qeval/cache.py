"""On-disk cache of evaluated cells, keyed by everything that can change a result.

A cell is reused only when the key matches exactly: the model (its card and the
size and mtime of every file in its folder, or the source file of a Python
model source), the precision's frozen config, the suite's content hash and
case limit, the generation and timing settings, the device and the machine
(CPU/GPU model, host), and the versions of every library that touches the
numbers, and qeval's own source. Only ``ok`` cells are stored: a failure may be transient and is
retried. A damaged entry is treated as a miss and overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qeval.errors import ReportError
from qeval.keys import CACHE_VERSION, cell_key, code_identity, model_identity
from qeval.report import atomic_write_text, cell_from_dict
from qeval.results import CellResult, jsonable, to_dict

__all__ = ["CACHE_VERSION", "CachedCell", "CellCache", "cell_key", "code_identity", "model_identity"]


@dataclass(frozen=True)
class CachedCell:
    cell: CellResult
    run_id: str
    """The run that measured it."""
    created_at: str


class CellCache:
    """Cells stored as ``<folder>/<key>.json``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str) -> CachedCell | None:
        path = self.folder / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return CachedCell(cell_from_dict(data["cell"]), str(data["run_id"]), str(data["created_at"]))
        except (OSError, ValueError, KeyError, TypeError, ReportError):
            return None

    def put(self, key: str, cell: CellResult, run_id: str, created_at: str) -> Path | None:
        if cell.status != "ok":
            return None
        data = {"cache_version": CACHE_VERSION, "run_id": run_id, "created_at": created_at, "cell": to_dict(cell)}
        path = self.folder / f"{key}.json"
        atomic_write_text(path, json.dumps(jsonable(data), ensure_ascii=False, allow_nan=False))
        return path
