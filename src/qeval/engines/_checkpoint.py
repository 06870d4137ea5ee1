"""A checkpoint's identity: the content hash, weight bytes and quantization config of what an
engine is given to serve."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qeval.engines._base import Checkpoint
from qeval.keys import CONTENT_MEMO as _MEMO

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def content_sha256(path: Path) -> str:
    """SHA-256 over every file's relative name and bytes (a folder), or over a file's bytes.

    A folder's hash is remembered in ``.qeval-content.json`` beside its files, keyed on every
    file's size and modification time, so a 500 MB checkpoint is read once, not per run."""
    if path.is_file():
        return _file_sha256(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != _MEMO)
    stamp = [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo = path / _MEMO
    try:
        saved = json.loads(memo.read_text())
        if saved.get("stamp") == stamp:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(path)).encode() + b"\0")
        digest.update(_file_sha256(p).encode())
    value = digest.hexdigest()
    try:
        memo.write_text(json.dumps({"stamp": stamp, "sha256": value}))
    except OSError:  # a read-only model folder: hash again next time
        pass
    return value


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def quantization_config(path: Path) -> Mapping[str, Any]:
    """``config.json``'s ``quantization_config`` (GPTQ, compressed-tensors), or ``{}``."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    value = config.get("quantization_config") if isinstance(config, dict) else None
    return dict(value) if isinstance(value, dict) else {}


def describe(path: Path, *, prepared_by: str = "as-is", prepare_s: float = 0.0, cache: str | None = None,
             quant_config: Mapping[str, Any] | None = None, notes: tuple[str, ...] = ()) -> Checkpoint:
    """The :class:`Checkpoint` record of ``path`` (hashing it, or reading the remembered hash)."""
    return Checkpoint(
        path=path, sha256=content_sha256(path), weights_bytes=weights_bytes(path),
        quant_config=dict(quant_config if quant_config is not None else quantization_config(path)),
        prepared_by=prepared_by, prepare_s=round(prepare_s, 3), cache=cache, notes=notes,
    )


__all__ = ["content_sha256", "describe", "quantization_config", "weights_bytes"]
