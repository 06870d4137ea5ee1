"""Checkpoints an engine is given: the model folder as-is, or a GPTQ checkpoint ``qeval quantize``
writes, kept under ``$QEVAL_CACHE/served/`` so the next run serves it without quantizing again."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qeval.engines._base import Checkpoint
from qeval.engines._checkpoint import content_sha256, describe, quantization_config
from qeval.errors import UsageError


def hf_source(model: str) -> Any:
    """The Hugging Face folder ``model`` names (a built-in alias or a local folder)."""
    from qeval.models import HFSource, resolve_model

    source = resolve_model(model)
    if not isinstance(source, HFSource):
        raise UsageError(f"{model!r}: a served engine needs a Hugging Face model folder or a built-in alias "
                         "(smollm2-135m); fake, replay and Python sources run in-process only.")
    return source


def model_folder(model: str) -> Path:
    path: Path = hf_source(model).path
    return path


def served_dir(model_path: Path, precision: str, calibration: Any) -> Path:
    """``$QEVAL_CACHE/served/NAME-PRECISION-MODELHASH-SAMPLEHASH``: keyed by the model's content and
    the calibration sample, so a changed model or sample never reuses a stale checkpoint."""
    from qeval.models import cache_dir

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_path.name).strip("-") or "model"
    sample = getattr(calibration, "sample_hash", "none")[:12]
    return cache_dir() / "served" / f"{slug}-{precision}-{content_sha256(model_path)[:12]}-{sample}"


def gptq_checkpoint(model: str, precision: str, calibration: Any, say: Callable[[str], None]) -> Checkpoint:
    """The GPTQ checkpoint of ``model`` at ``precision`` (``gptq-int4``, ``gptq-int8``)."""
    from qeval.checkpoint import QuantizeJob, write_checkpoint

    if calibration is None:
        raise UsageError(f"{precision} needs calibration text: pass --calibration NAME (generic, medical, code, "
                         "arithmetic under calibration/) or a calibration.jsonl path.")
    from qeval.artifact_lock import artifact_lock
    from qeval.quantize import get_precision

    source = hf_source(model)
    out = served_dir(source.path, precision, calibration)
    artifact = source.artifact_dir(get_precision(precision), calibration)
    assert artifact is not None, "a calibrated precision always has a cached quantization"
    with artifact_lock(out, say):  # one writer per checkpoint and machine; the next one reuses it
        if quantization_config(out) and _quantized_key(out) == artifact.name:
            return describe(out, prepared_by="qeval quantize (gptqmodel)", cache="hit")
        if out.exists():  # made with other library versions or settings (or by an older qeval)
            say(f"{out} was quantized with other settings or library versions: writing it again")
        say(f"writing the {precision} checkpoint for the engine (calibration {calibration.name}) to {out}")
        start = time.perf_counter()
        job = QuantizeJob(model=model, precision=precision, out=out, calibration=calibration.name,
                          calibration_samples=calibration.samples, calibration_seed=calibration.seed, device="cpu",
                          force=out.exists())
        written = write_checkpoint(job, source, calibration=calibration)
        return describe(out, prepared_by="qeval quantize (gptqmodel)", prepare_s=time.perf_counter() - start,
                        cache=written.cache)


def _quantized_key(out: Path) -> str | None:
    """The cached quantization a served checkpoint was copied from (``quantized_key`` of its
    ``qeval-gptq.json``), or ``None`` when it does not say."""
    import json

    from qeval.models._gptq_checkpoint import QEVAL_RECORD

    try:
        value = json.loads((out / QEVAL_RECORD).read_text()).get("quantized_key")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


__all__ = ["gptq_checkpoint", "hf_source", "model_folder", "served_dir"]
