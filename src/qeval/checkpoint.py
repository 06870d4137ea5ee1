"""GPTQ checkpoints on disk: recognise one, load it as stored, and write one.

A GPTQ checkpoint is a Hugging Face model folder whose weights are already
quantized. Two layouts exist: gptqmodel (and transformers) put the scheme in
``config.json`` under ``quantization_config`` (``quant_method: "gptq"``);
AutoGPTQ, now end-of-life, left config.json plain and wrote it to
``quantize_config.json`` beside it. gptqmodel loads both, so qeval loads every
GPTQ checkpoint through it (:func:`load_gptq_checkpoint`, with the kernel
fallback of :func:`qeval.quantize._gptq.load_checkpoint`).

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

from qeval.errors import BackendUnavailable, ModelError, UsageError

QEVAL_RECORD = "qeval-gptq.json"
"""Written into a checkpoint by qeval (same name as the cache's completion marker)."""
AUTOGPTQ_CONFIG = "quantize_config.json"
AS_IS = "as-is"


@dataclass(frozen=True)
class GptqCheckpoint:
    """What a folder's GPTQ metadata says about its weights."""

    path: Path
    bits: int
    group_size: int
    """-1 means one group per output row (per-channel)."""
    sym: bool
    desc_act: bool
    checkpoint_format: str
    """"gptq" (v1, AutoGPTQ's packing) or "gptq_v2" (gptqmodel's); gptqmodel reads both."""
    layout: str
    """Who wrote the metadata where: "gptqmodel" or "transformers" (config.json), "AutoGPTQ" (quantize_config.json)."""
    config_file: str
    """The file the scheme was read from: "config.json" or "quantize_config.json"."""
    quantizer: tuple[str, ...] = ()
    """The producing tools as the checkpoint names them, e.g. ("gptqmodel:7.6.0",)."""
    qeval_record: Mapping[str, Any] | None = None
    """``qeval-gptq.json`` when qeval wrote the checkpoint (calibration set, timings)."""

    def describe(self) -> str:
        """For the model card, e.g. "GPTQ int4, group 128, sym, desc_act=False (gptqmodel format)"."""
        group = "per-channel" if self.group_size == -1 else f"group {self.group_size}"
        fmt = f"{self.layout} format" + (f", {self.checkpoint_format}" if self.checkpoint_format != "gptq" else "")
        return f"GPTQ int{self.bits}, {group}, {'sym' if self.sym else 'asym'}, desc_act={self.desc_act} ({fmt})"

    def skip_reason(self, precision: str) -> str:
        """Why ``precision`` is not run on this checkpoint (recorded as a skipped cell): it would
        quantize already quantized weights, which measures neither the original model nor this one."""
        group = "per-channel" if self.group_size == -1 else f"group {self.group_size}"
        return (
            f"the model at {self.path} is already GPTQ int{self.bits} ({group}); evaluate it with "
            f"--precisions {AS_IS}"
        )

    def scheme(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "group_size": self.group_size,
            "sym": self.sym,
            "desc_act": self.desc_act,
            "checkpoint_format": self.checkpoint_format,
            "layout": self.layout,
            "config_file": self.config_file,
            "quantizer": list(self.quantizer),
        }


def detect_gptq_checkpoint(path: Path, config: Mapping[str, Any] | None = None) -> GptqCheckpoint | None:
    """The GPTQ metadata of the model folder ``path``, or None for a plain (or otherwise quantized) model.

    ``config`` is the parsed config.json when the caller has it. A malformed
    ``quantize_config.json`` or GPTQ field raises :class:`ModelError` naming file and key.
    """
    path = Path(path)
    if config is None:
        config = _read_json(path / "config.json")
    quant = config.get("quantization_config")
    if isinstance(quant, Mapping):
        if str(quant.get("quant_method", "")).lower() != "gptq":
            return None
        file, where = "config.json", "quantization_config."
        quantizer = _quantizer(quant)
        layout = "gptqmodel" if any(q.startswith("gptqmodel") for q in quantizer) else "transformers"
    elif (path / AUTOGPTQ_CONFIG).is_file():
        quant = _read_json(path / AUTOGPTQ_CONFIG)
        # AutoGPTQ before 0.7 wrote no quant_method; a "bits" key is what every version has.
        if str(quant.get("quant_method", "gptq")).lower() != "gptq" or "bits" not in quant:
            return None
        file, where, quantizer, layout = AUTOGPTQ_CONFIG, "", _quantizer(quant), "AutoGPTQ"
    else:
        return None
    record = path / QEVAL_RECORD
    return GptqCheckpoint(
        path=path,
        bits=_field(quant, "bits", int, path / file, where, None),
        group_size=_field(quant, "group_size", int, path / file, where, 128),
        sym=_field(quant, "sym", bool, path / file, where, True),
        desc_act=_field(quant, "desc_act", bool, path / file, where, False),
        checkpoint_format=str(quant.get("checkpoint_format") or quant.get("format") or "gptq").lower(),
        layout=layout,
        config_file=file,
        quantizer=quantizer,
        qeval_record=_read_json(record) if record.is_file() else None,
    )


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{file}: cannot read it as JSON ({exc}). Restore the file the quantizer wrote.") from None
    if not isinstance(data, dict):
        raise ModelError(f"{file}: expected a JSON object, got {type(data).__name__}.")
    return data


def _field(quant: Mapping[str, Any], key: str, kind: type, file: Path, where: str, default: Any) -> Any:
    value = quant.get(key, default)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise ModelError(
            f"{file}: {where}{key} is {value!r}; a GPTQ checkpoint records it as a {kind.__name__} "
            "(e.g. bits 4, group_size 128, sym true, desc_act false). Fix the file or re-quantize the model."
        )
    return value


def _quantizer(quant: Mapping[str, Any]) -> tuple[str, ...]:
    meta = quant.get("meta")
    names = meta.get("quantizer") if isinstance(meta, Mapping) else None
    if isinstance(names, str):
        names = [names]
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


def load_gptq_checkpoint(checkpoint: GptqCheckpoint, device: str) -> tuple[Any, dict[str, Any]]:
    """Load ``checkpoint`` as stored through gptqmodel (first kernel that works on ``device``).

    Returns the model and the record fields for the cell; raises
    :class:`BackendUnavailable` with the ``pip install`` line when gptqmodel is missing.
    """
    from qeval.quantize import quiet
    from qeval.quantize._gptq import GPTQMODEL, load_checkpoint

    gptq = GPTQMODEL.load("gptqmodel")
    with quiet():
        model, kernel = load_checkpoint(gptq, checkpoint.path, device)
    from torch import nn

    return model, {
        "layers_skipped": [name for name, m in model.named_modules() if isinstance(m, nn.Linear)],
        "library": GPTQMODEL.dist,
        "library_version": GPTQMODEL.version(),
        "scheme": checkpoint.scheme(),
        "group_size": checkpoint.group_size,
        "checkpoint": str(checkpoint.path),
        "source_precision": checkpoint.describe(),
        "qeval_checkpoint": dict(checkpoint.qeval_record) if checkpoint.qeval_record else None,
        # Nothing was quantized here: the load is the work (the cell's load_s).
        "quantize_peak_bytes": None,
        "quantize_peak_kind": None,
        **kernel,
    }


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


def write_checkpoint(job: QuantizeJob, source: Any = None) -> WrittenCheckpoint:
    """Quantize ``job.model`` at ``job.precision`` and write a GPTQ checkpoint folder to ``job.out``.

    Everything a user can get wrong is checked before anything heavy runs. The
    quantized weights come from the checkpoint cache when an earlier run made
    them with the same model, scheme, calibration sample and library versions.
    The folder is assembled beside ``out`` and renamed into place at the end.
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
    calibration = load_calibration(job.calibration, samples=job.calibration_samples, seed=job.calibration_seed)
    device = resolve_device(job.device)
    reason = precision.unavailable_reason(device)
    if reason:
        raise BackendUnavailable(f"{precision.name}: {reason}")

    start = time.perf_counter()
    loaded = source.load(precision.name, device, calibration)
    loaded.model.close()
    applied = loaded.applied
    cached = Path(applied["checkpoint"])
    record = {
        # A cache made by an older qeval may not have recorded these.
        "quantize_seconds": None,
        "quantize_peak_bytes": None,
        **_read_json(cached / QEVAL_RECORD),
        "written_by": "qeval quantize",
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cache": applied.get("cache"),
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
        cache=str(applied.get("cache")),
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
