"""Writing GPTQ checkpoints (recognising and loading one is :mod:`qeval.models._gptq_checkpoint`,
re-exported here).

:func:`write_checkpoint` is ``qeval quantize``: quantize a model once (or reuse
the cached artifact of an earlier sweep) and write a self-contained checkpoint
folder, atomically, with ``qeval-gptq.json`` recording how it was made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qeval.errors import BackendUnavailable, UsageError
from qeval.models._gptq_checkpoint import (
    AS_IS,
    AUTOGPTQ_CONFIG,
    QEVAL_RECORD,
    GptqCheckpoint,
    _read_json,
    detect_gptq_checkpoint,
    load_gptq_checkpoint,
)

__all__ = [
    "AS_IS", "AUTOGPTQ_CONFIG", "QEVAL_RECORD", "GptqCheckpoint", "QuantizeJob", "WrittenCheckpoint",
    "checkpoint_precisions", "detect_gptq_checkpoint", "load_gptq_checkpoint", "write_checkpoint",
]

# --- writing (qeval quantize) -------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizeJob:
    """What ``qeval quantize`` is asked for."""

    model: str
    """A model spec: a local HF folder or a built-in alias."""
    precision: str
    """A calibrated-checkpoint precision: see :func:`checkpoint_precisions`."""
    out: Path
    """The checkpoint folder to write (must not exist or be empty, unless ``force``)."""
    calibration: str | None
    """Calibration set name under calibration/, or a .jsonl path."""
    calibration_samples: int = 128
    calibration_seed: int = 0
    device: str = "auto"
    force: bool = False
    """Replace a non-empty ``out``."""


@dataclass(frozen=True)
class WrittenCheckpoint:
    """What ``qeval quantize`` wrote."""

    path: Path
    precision: str
    description: str
    """As on a model card, e.g. "GPTQ int4, group 128, sym, desc_act=False (gptqmodel format)"."""
    size_bytes: int
    """Every file in the folder, as stored on disk."""
    wall_seconds: float
    """The whole command: load, quantize (or cache hit), copy."""
    quantize_seconds: float | None
    """Calibrating and packing, when it happened (also recorded for a cache hit's original run)."""
    quantize_peak_bytes: int | None
    cache: str
    """"miss": quantized now; "hit": copied from the checkpoint cache of an earlier run."""
    calibration: Mapping[str, Any]


def checkpoint_precisions() -> list[str]:
    """Names of the precisions that produce a reusable calibrated checkpoint (GPTQ)."""
    from qeval.quantize import PRECISIONS
    from qeval.quantize._gptq import GptqPrecision

    return [name for name in PRECISIONS if isinstance(PRECISIONS.get(name), GptqPrecision)]


def write_checkpoint(job: QuantizeJob, source: Any = None, calibration: Any = None) -> WrittenCheckpoint:
    """Quantize ``job.model`` at ``job.precision`` and write a GPTQ checkpoint folder to ``job.out``.

    Everything a user can get wrong is checked before anything heavy runs. The
    quantized weights come from the checkpoint cache when an earlier run made
    them with the same model, scheme, calibration sample and library versions.
    The folder is assembled beside ``out`` and renamed into place at the end.
    ``calibration`` (a :class:`qeval.calibration.CalibrationSet` already sampled, as a sweep
    has it) is used instead of loading ``job.calibration`` again.
    """
    from qeval.calibration import load_calibration
    from qeval.models import HFSource, resolve_device, resolve_model
    from qeval.quantize import get_precision

    precision = get_precision(job.precision)
    allowed = checkpoint_precisions()
    if precision.name not in allowed:
        raise UsageError(
            f"--precision {precision.name}: qeval quantize writes calibrated checkpoints, which only "
            f"{', '.join(allowed)} produce. {precision.name} is applied in memory when a sweep loads the model: "
            f"evaluate it with qeval sweep --precisions {precision.name}."
        )
    out = _check_out(Path(job.out), job.force)
    if not job.calibration:
        raise UsageError(
            f"{precision.name} needs calibration text: pass --calibration NAME (generic, medical, code, arithmetic "
            "under calibration/) or a calibration.jsonl path."
        )
    source = source or resolve_model(job.model)
    if not isinstance(source, HFSource):
        raise UsageError(f"--model {job.model}: qeval quantize needs a Hugging Face model folder or a built-in alias.")
    if source.gptq is not None:
        raise UsageError(
            f"--model {job.model}: {source.path} is already a GPTQ checkpoint ({source.gptq.describe()}). "
            "Quantize the original model instead, or evaluate this one with qeval sweep --precisions as-is."
        )
    if out == source.path or source.path.is_relative_to(out):
        raise UsageError(f"--out {out} holds the model being quantized ({source.path}); choose another folder.")
    if calibration is None:
        calibration = load_calibration(job.calibration, samples=job.calibration_samples, seed=job.calibration_seed)
    device = resolve_device(job.device)
    reason = precision.unavailable_reason(device)
    if reason:
        raise BackendUnavailable(f"{precision.name}: {reason}")

    start = time.perf_counter()
    loaded = source.load(precision.name, device, calibration)
    loaded.model.close()
    applied = loaded.applied
    assert applied.checkpoint is not None, f"{precision.name}: the quantizer recorded no checkpoint folder"
    cached = Path(applied.checkpoint)
    record = {
        # A cache made by an older qeval may not have recorded these.
        "quantize_seconds": None,
        "quantize_peak_bytes": None,
        **_read_json(cached / QEVAL_RECORD),
        "written_by": "qeval quantize",
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cache": applied.cache,
        # which cached quantization this copies (its name is the key: model, scheme, calibration
        # sample, library versions): a served copy is reused only while that key still matches
        "quantized_key": cached.name,
        "source_model": {
            "spec": source.card.spec,
            "name": source.card.name,
            "path": str(source.path),
            "source_precision": source.card.source_precision,
        },
    }
    written = _assemble(cached, source.path, out, record)
    checkpoint = detect_gptq_checkpoint(written)
    assert checkpoint is not None, f"{written}: gptqmodel wrote no GPTQ quantization_config"
    return WrittenCheckpoint(
        path=written,
        precision=precision.name,
        description=checkpoint.describe(),
        size_bytes=sum(p.stat().st_size for p in written.rglob("*") if p.is_file()),
        wall_seconds=round(time.perf_counter() - start, 3),
        quantize_seconds=record.get("quantize_seconds"),
        quantize_peak_bytes=record.get("quantize_peak_bytes"),
        cache=str(applied.cache),
        calibration=record.get("calibration") or calibration.record(),
    )


def _check_out(out: Path, force: bool) -> Path:
    out = out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder path for the checkpoint.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(
            f"--out {out} exists and is not empty. Pass --force to replace it, or choose another folder."
        )
    return out


def _assemble(cached: Path, model_dir: Path, out: Path, record: Mapping[str, Any]) -> Path:
    """Copy the cached checkpoint and the model's own tokenizer into a folder beside ``out``,
    write the record last, then swap it into place."""
    from transformers import AutoTokenizer

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        shutil.copytree(cached, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(QEVAL_RECORD))
        # The original tokenizer files, not the ones gptqmodel re-saved (it "fixes" pad tokens):
        # evaluating the checkpoint must tokenize exactly as evaluating the model did.
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(staging)
        (staging / QEVAL_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{secrets.token_hex(3)}")
            os.replace(out, old)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
