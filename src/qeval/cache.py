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

import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeval.errors import ReportError
from qeval.report import atomic_write_text, cell_from_dict
from qeval.report._json import jsonable
from qeval.results import CellResult, to_dict

CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedCell:
    cell: CellResult
    run_id: str
    """The run that measured it."""
    created_at: str


def model_identity(spec: str, source: Any) -> dict[str, Any]:
    """What identifies a model's weights without hashing gigabytes: the card, plus
    (name, size, mtime) of every file in its folder, or the source file of a
    ``module:attr`` model source."""
    card = to_dict(source.card)
    card.pop("parameters", None)  # learnt on first load: it must not change the key mid-session
    identity: dict[str, Any] = {"spec": spec, "card": card}
    path = card.get("path")
    if path and Path(path).is_dir():
        identity["files"] = sorted(
            (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(path).rglob("*") if p.is_file()
        )
    if ":" in spec:
        module = sys.modules.get(spec.split(":", 1)[0])
        origin = getattr(module, "__file__", None)
        if origin:
            identity["module_sha256"] = hashlib.sha256(Path(origin).read_bytes()).hexdigest()
    return identity


@functools.cache
def code_identity() -> str:
    """sha256 over qeval's own source files: an editable install keeps its version
    number while its scorers change, and a changed scorer must not reuse old cells."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cell_key(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (every input that matters, see module doc)."""
    text = json.dumps(jsonable({"cache_version": CACHE_VERSION, **parts}), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
