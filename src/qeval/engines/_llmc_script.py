"""Write an llm-compressor (compressed-tensors) checkpoint: run in the environment where
``llmcompressor`` is installed, never imported by qeval there.

    python -I -u _llmc_script.py ARGS.json

``ARGS.json`` (qeval's :mod:`qeval.engines._compressed` writes it)::

    {"model": MODEL_FOLDER, "out": FOLDER_TO_WRITE, "result": RESULT.json,
     "texts": [...], "max_seq_length": 512, "min_total_tokens": "widest" | N,
     "modifiers": [{"type": "SmoothQuantModifier", "args": {...}},
                   {"type": "GPTQModifier", "args": {...}}],
     "group_size_candidates": [128, 64, 32], "seed": 0, "threads": 1}

A ``"group_size": "auto"`` anywhere in a modifier's arguments becomes the largest candidate
that divides the in-features of every quantized Linear (int4 kernels need whole groups;
SmolLM2's 576-wide layers take 64, not 128).

``threads``: torch's intra-op threads (GPTQ's column loop is thousands of tiny ops: two
threads on a busy 2-core machine wait on each other, measured 5.7 s instead of 0.25 s for
one 1536x576 layer).

``RESULT.json`` gets ``{"ok": true, ...}`` (library versions, group size, token counts,
seconds, the static activation scales per layer) or ``{"ok": false, "kind": "calibration" |
"library", "error": "..."}``; the library's own output (and a traceback) goes to stdout and
stderr, which qeval keeps as the checkpoint's log. Standard library only at module level, so
the pure helpers import anywhere (qeval's tests do).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

AUTO = "auto"
MODIFIER_MODULES = {
    "SmoothQuantModifier": "llmcompressor.modifiers.transform",
    "GPTQModifier": "llmcompressor.modifiers.gptq",
    "QuantizationModifier": "llmcompressor.modifiers.quantization",
}


class CalibrationTooSmall(ValueError):
    """The calibration texts give GPTQ too few tokens."""


def choose_group_size(widths: Iterable[int], candidates: Sequence[int]) -> int | None:
    """The largest candidate dividing every width, or ``None``."""
    widths = list(widths)
    for size in sorted(candidates, reverse=True):
        if size > 0 and all(w % size == 0 for w in widths):
            return size
    return None


def fill_auto(value: Any, group_size: int | None) -> Any:
    """``value`` with every ``"group_size": "auto"`` replaced by ``group_size``."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if key == "group_size" and item == AUTO:
                if group_size is None:
                    raise ValueError("group_size 'auto': no candidate divides every quantized layer's in-features")
                out[key] = group_size
            else:
                out[key] = fill_auto(item, group_size)
        return out
    if isinstance(value, list):
        return [fill_auto(item, group_size) for item in value]
    return value


def needs_group_size(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any((k == "group_size" and v == AUTO) or needs_group_size(v) for k, v in value.items())
    if isinstance(value, list):
        return any(needs_group_size(v) for v in value)
    return False


def token_budget(lengths: Sequence[int], min_total_tokens: int) -> dict[str, int]:
    """Token counts of the (truncated) texts; raises :class:`CalibrationTooSmall` below the bound
    (GPTQ's Hessian over a layer's inputs is rank-deficient with fewer tokens than inputs)."""
    total = sum(lengths)
    if total < min_total_tokens:
        per_text = total / max(len(lengths), 1)
        need = int(len(lengths) * min_total_tokens / max(total, 1)) + 1
        raise CalibrationTooSmall(
            f"{len(lengths)} calibration texts give {total} tokens (about {per_text:.0f} each); GPTQ needs at "
            f"least {min_total_tokens} (the widest quantized layer's inputs). Ask for about {need} samples "
            "with --calibration-samples, or use a set with longer texts.")
    return {"texts": len(lengths), "tokens": total, "longest": max(lengths, default=0)}


def _versions(names: Sequence[str]) -> dict[str, str | None]:
    import importlib.metadata as metadata

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _modifier(spec: Mapping[str, Any], group_size: int | None) -> Any:
    import importlib

    kind = str(spec["type"])
    if kind not in MODIFIER_MODULES:
        raise ValueError(f"unknown modifier {kind!r}: this script builds {', '.join(MODIFIER_MODULES)}")
    cls = getattr(importlib.import_module(MODIFIER_MODULES[kind]), kind)
    return cls(**fill_auto(dict(spec.get("args", {})), group_size))


def _linear_widths(model: Any, ignore: Sequence[str]) -> dict[str, int]:
    import torch

    return {name: module.in_features for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.split(".")[-1] not in ignore}


def _input_scales(model: Any) -> dict[str, float]:
    """Each quantized layer's static activation scale (per-tensor), after calibration."""
    scales: dict[str, float] = {}
    for name, module in model.named_modules():
        scale = getattr(module, "input_scale", None)
        if scale is not None and scale.numel() == 1:
            scales[name] = float(scale.detach().float().reshape(()))
    return scales


def write(args: Mapping[str, Any]) -> dict[str, Any]:
    """Calibrate and write the checkpoint ``args`` describes; the result record."""
    started = time.perf_counter()
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcompressor import oneshot

    torch.manual_seed(int(args.get("seed", 0)))
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    model_dir = str(args["model"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    loaded_s = time.perf_counter() - started

    ignore = ["lm_head"]
    widths = _linear_widths(model, ignore)
    group_size = None
    if needs_group_size(args["modifiers"]):
        group_size = choose_group_size(widths.values(), args.get("group_size_candidates", [128, 64, 32]))
    max_len = int(args["max_seq_length"])
    encoded = [tokenizer(text, truncation=True, max_length=max_len) for text in args["texts"]]
    minimum = args.get("min_total_tokens", "widest")
    budget = token_budget([len(e["input_ids"]) for e in encoded],
                          max(widths.values()) if minimum == "widest" else int(minimum))
    dataset = Dataset.from_dict({"input_ids": [e["input_ids"] for e in encoded],
                                 "attention_mask": [e["attention_mask"] for e in encoded]})
    recipe = [_modifier(spec, group_size) for spec in args["modifiers"]]

    calibrating = time.perf_counter()
    oneshot(model=model, tokenizer=tokenizer, dataset=dataset, recipe=recipe, num_calibration_samples=len(dataset),
            max_seq_length=max_len, shuffle_calibration_samples=False, output_dir=str(args["out"]))
    calibrated_s = time.perf_counter() - calibrating
    return {
        "ok": True,
        "versions": _versions(("llmcompressor", "compressed-tensors", "torch", "transformers")),
        "group_size": group_size,
        "calibration": {**budget, "max_seq_length": max_len},
        "layer_in_features": sorted(set(widths.values())),
        "input_scales": _input_scales(model),
        "load_s": round(loaded_s, 3),
        "calibrate_s": round(calibrated_s, 3),
        "total_s": round(time.perf_counter() - started, 3),
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -I _llmc_script.py ARGS.json", file=sys.stderr)
        return 2
    args = json.loads(Path(argv[0]).read_text())
    result_path = Path(args["result"])
    try:
        result = write(args)
    except CalibrationTooSmall as exc:
        result = {"ok": False, "kind": "calibration", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result qeval reads
        traceback.print_exc()
        result = {"ok": False, "kind": "library", "error": f"{type(exc).__name__}: {exc}"}
    result_path.write_text(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
