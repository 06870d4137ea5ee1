"""Keys that identify what a result depends on, without importing anything that does work:
the plugin's cell cache and the quantized-checkpoint cache both key on them."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qeval.results import jsonable, to_dict

CACHE_VERSION = 1
"""Bumped when a key's inputs change meaning: every earlier entry then misses."""

CONTENT_MEMO = ".qeval-content.json"
"""The remembered content hash qeval writes into a model folder (``engines._checkpoint``): qeval's
bookkeeping, not the model, so no key may depend on whether it is there yet."""


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
            for p in Path(path).rglob("*") if p.is_file() and p.name != CONTENT_MEMO
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
