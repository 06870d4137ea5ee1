"""Reading GPTQ checkpoints on disk: recognise one and load it as stored.

A GPTQ checkpoint is a Hugging Face model folder whose weights are already
quantized. Two layouts exist: gptqmodel (and transformers) put the scheme in
``config.json`` under ``quantization_config`` (``quant_method: "gptq"``);
AutoGPTQ, now end-of-life, left config.json plain and wrote it to
``quantize_config.json`` beside it. gptqmodel loads both, so qeval loads every
GPTQ checkpoint through it (:func:`load_gptq_checkpoint`, with the kernel
fallback of :func:`qeval.quantize._gptq.load_checkpoint`). Writing one
(``qeval quantize``) is :mod:`qeval.checkpoint`, which loads models: this module
does not, so models can read checkpoints without an import cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qeval.errors import ModelError

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
