"""GPTQ (int4 / int8 weights) through gptqmodel, the maintained successor of auto-gptq.

auto-gptq is end-of-life: it fails to import with transformers 5 and cannot
quantize without CUDA. gptqmodel 7.6.0 quantizes on CPU with its torch backend
(7.7 needs torch >= 2.14.1). GPTQ needs calibration text: the precision takes a
:class:`qeval.calibration.CalibrationSet` through :class:`QuantizeContext`.

gptqmodel works on model folders, not modules in memory, so the base model is
saved to a scratch folder, quantized there and written as a GPTQ checkpoint to
the context's ``artifact_dir``, renamed into place only when complete. A later
run with the same key loads that checkpoint instead of quantizing again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

from qeval.calibration import check_token_budget
from qeval.quantize._base import (
    GROUP_SIZE_CANDIDATES,
    Backend,
    Precision,
    QuantizeContext,
    choose_group_size,
    in_features_of,
    select_linears,
    torch_dtype,
)
from qeval.quantize._output import output_to, tail

GPTQMODEL = Backend(dist="gptqmodel", module="gptqmodel", pin="7.6.0", extra="gptq")
GPTQMODEL_MIN_TEXT_TOKENS = 10
"""gptqmodel 7.6 drops calibration texts shorter than this (``calibration_data_min_length``)."""
GPTQMODEL_LOG = "gptqmodel.log"
"""gptqmodel's terminal output (progress bars, per-layer tables) while quantizing, kept in the checkpoint."""
DONE_FILE = "qeval-gptq.json"
"""Written last into a finished checkpoint: its presence means the artifact is complete."""


@dataclass(frozen=True)
class GptqConfig:
    bits: int
    group_size_candidates: tuple[int, ...] = GROUP_SIZE_CANDIDATES
    """The largest of these dividing every quantized layer's in_features is used."""
    symmetric: bool = True
    desc_act: bool = False
    """Activation-order quantization off: faster kernels, and the common default."""
    damp_percent: float = 0.05
    batch_size: int = 1
    compute_dtype: str = "bfloat16"
    """The base model is loaded in this dtype before it is saved for gptqmodel; the checkpoint's
    unquantized tensors (embeddings, norms) are stored in it, and it is evaluated in it."""
    cpu_calibration_dtype: str = "float32"
    """The dtype of gptqmodel's calibration forwards on CPU (its own choice is bfloat16). CPUs without
    AVX512-BF16 or AMX emulate bf16 matmuls: SmolLM2-135M, 8 samples, 2 cores (AVX2) quantized in
    114 s at float32 against 268 s at bfloat16. The Hessian is accumulated in float32 either way.
    On CUDA gptqmodel chooses."""


class GptqPrecision(Precision[GptqConfig]):
    backend = GPTQMODEL
    needs_calibration = True

    def _apply(self, model: nn.Module, device: str, context: QuantizeContext | None = None) -> tuple[nn.Module, dict[str, Any]]:
        assert context is not None, "Precision.apply passes a context with calibration to a calibrated precision"
        with _library_output(Path(tempfile.gettempdir()) / f"qeval-gptq-import-{os.getpid()}.log"):
            gptq = self.backend.load("gptqmodel")  # prints a version banner on first import
        names, kept = select_linears(model)
        widths = in_features_of(model, names)
        group = choose_group_size(widths, self.name, self.config.group_size_candidates)
        tokens = check_token_budget(
            context.calibration, context.tokenizer, min_text_tokens=GPTQMODEL_MIN_TEXT_TOKENS,
            min_total_tokens=max(widths),
            why=f"as many as the widest quantized layer's {max(widths)} inputs, or GPTQ's Hessian is rank-deficient",
        )
        backend = gptq.BACKEND.TORCH if device == "cpu" else gptq.BACKEND.AUTO
        target = context.artifact_dir
        hit = target is not None and (target / DONE_FILE).is_file()
        calibrate_s = None
        if not hit:
            start = time.perf_counter()
            target = self._quantize(gptq, model, context, group, backend, target)
            calibrate_s = round(time.perf_counter() - start, 3)
        qmodel, kernel_record = load_checkpoint(gptq, target, device)
        made = json.loads((target / DONE_FILE).read_text())
        return qmodel, {
            "calibration_dtype": made.get("calibration_dtype"),
            "group_size": group,
            "layers_skipped": kept,
            "calibration": context.calibration.record(),
            "calibration_tokens": tokens,
            "cache": "hit" if hit else "miss",
            "checkpoint": str(target),
            "gptq_quantize_seconds": calibrate_s,
            **kernel_record,
        }

    def _quantize(self, gptq: Any, model: nn.Module, context: QuantizeContext, group: int, backend: Any,
                  target: Path | None) -> Path:
        os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
        parent = target.parent if target is not None else Path(tempfile.mkdtemp(prefix="qeval-gptq-"))
        parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".qeval-gptq-", dir=parent))
        _redirect_logs(scratch / "logs")
        from qeval.memory import peak_memory

        # gptqmodel works on model folders: the model is a transformers model (save_pretrained, device)
        hf_model = cast("PreTrainedModel", model)
        started = time.perf_counter()
        log = scratch / GPTQMODEL_LOG
        try:
            with peak_memory(hf_model.device.type) as peak, _library_output(log):
                base = scratch / "base"
                hf_model.save_pretrained(base)
                context.tokenizer.save_pretrained(base)
                config = gptq.QuantizeConfig(
                    bits=self.config.bits, group_size=group, sym=self.config.symmetric,
                    desc_act=self.config.desc_act, damp_percent=self.config.damp_percent,
                )
                calibrate_dtype = self._calibration_dtype(hf_model.device.type)
                extra = {"dtype": torch_dtype(calibrate_dtype)} if calibrate_dtype is not None else {}
                work = gptq.GPTQModel.load(str(base), config, device=hf_model.device.type, **extra)
                work.quantize(list(context.calibration.texts), tokenizer=context.tokenizer,
                              batch_size=self.config.batch_size, backend=backend)
                out = scratch / "checkpoint"
                work.save(str(out))
                if calibrate_dtype is not None:
                    _store_unquantized_as(out, self.config.compute_dtype)
            done = self._done_record(context, group, time.perf_counter() - started, peak, calibrate_dtype)
            shutil.move(log, out / GPTQMODEL_LOG)
            (out / DONE_FILE).write_text(json.dumps(done, indent=1))
            final = target if target is not None else parent / "checkpoint"
            if final.exists():
                shutil.rmtree(final)
            os.replace(out, final)
            return final
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _calibration_dtype(self, device: str) -> str | None:
        """The dtype qeval asks gptqmodel to calibrate in, or None where gptqmodel chooses."""
        return self.config.cpu_calibration_dtype if device == "cpu" else None

    def _done_record(self, context: QuantizeContext, group: int, seconds: float, peak: Any,
                     calibrate_dtype: str | None) -> dict[str, Any]:
        """What ``qeval-gptq.json`` records: how the checkpoint was made (``qeval quantize``
        copies it into the folder it writes)."""
        from datetime import datetime, timezone

        from qeval.environment import package_versions

        versions = package_versions(("qeval", "gptqmodel", "torch", "transformers"))
        return {
            "precision": self.name,
            "bits": self.config.bits,
            "group_size": group,
            "sym": self.config.symmetric,
            "desc_act": self.config.desc_act,
            "damp_percent": self.config.damp_percent,
            "calibration_dtype": calibrate_dtype or "gptqmodel's choice",
            "calibration": context.calibration.record(),
            "quantize_seconds": round(seconds, 3),
            # Peak while saving the base model, calibrating and packing: CPU peak RSS of
            # the process, or CUDA peak allocated bytes.
            "quantize_peak_bytes": peak.peak_bytes,
            "quantize_peak_kind": peak.peak_kind,
            "quantize_device": peak.device,
            "qeval_version": versions["qeval"],
            "packages": versions,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


GPTQ_INT4 = GptqPrecision(
    "gptq-int4", "GPTQ int4 weights, group 128/64/32 by model widths, calibrated (gptqmodel)", GptqConfig(bits=4)
)
GPTQ_INT8 = GptqPrecision(
    "gptq-int8", "GPTQ int8 weights, group 128/64/32 by model widths, calibrated (gptqmodel)", GptqConfig(bits=8)
)


def _store_unquantized_as(folder: Path, dtype_name: str) -> None:
    """Rewrite a checkpoint calibrated at float32 so that it stores its unquantized tensors
    (embeddings, norms, an untied head) in ``dtype_name`` and says so in config.json, as one
    calibrated at the base's dtype would. Packed weights (int32) and scales (fp16) are untouched."""
    import torch
    from safetensors.torch import save_file

    dtype = torch_dtype(dtype_name)
    total_bytes = 0
    for path in sorted(folder.glob("*.safetensors")):
        shard = _load_if_float32(path)
        if shard is not None:
            tensors, metadata = shard
            cast = {name: t.to(dtype) if t.dtype == torch.float32 else t for name, t in tensors.items()}
            save_file(cast, str(path), metadata=metadata)
        total_bytes += _tensor_bytes(path)
    _edit_json(folder / "config.json", lambda config: config.update(
        {key: dtype_name for key in ("dtype", "torch_dtype") if key in config}))
    index = folder / "model.safetensors.index.json"  # a sharded checkpoint: its byte count changed too
    if index.is_file():
        _edit_json(index, lambda data: data.setdefault("metadata", {}).update(total_size=total_bytes))


def _load_if_float32(path: Path) -> tuple[dict[str, Any], dict[str, str] | None] | None:
    """A safetensors shard's tensors and metadata when it holds a float32 tensor, else ``None``
    (its dtypes are read from the header: nothing is loaded then)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        if not any(handle.get_slice(name).get_dtype() == "F32" for name in handle.keys()):
            return None
        return {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()


def _tensor_bytes(path: Path) -> int:
    """Bytes of a safetensors file's tensor data (its size less the 8-byte length and the header):
    what a sharded index's ``total_size`` sums."""
    with open(path, "rb") as f:
        header_bytes = int.from_bytes(f.read(8), "little")
    return path.stat().st_size - 8 - header_bytes


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _redirect_logs(folder: Path) -> None:
    # gptqmodel 7.6 writes per-layer logs to ./logs of whatever folder the user runs
    # from (a module-level relative path); keep them in the scratch folder instead.
    try:
        from gptqmodel.looper import loop_processor

        loop_processor._PROJECT_LOG_DIR = folder
    except (ImportError, AttributeError):
        pass


def kernel_candidates(gptq: Any, device: str) -> list[Any]:
    """Kernels to try, in order.

    CPU: ATen's int4pack matmul (4-bit only), then the plain torch kernel, which
    dequantizes every weight on every forward: SmolLM2-135M, 16 new tokens, 2 busy
    cores: 2.2 s vs 8 s. (gptqmodel's "torch_int8" CPU kernel is left out: it is a
    fused int8 path, not the weight-only scheme this precision stands for.)
    CUDA: gptqmodel's own pick first, then Triton and torch, which need no download or
    compile step (AUTO picks Machete on Hopper, which fetches CUTLASS on first use).
    """
    if device == "cpu":
        return [gptq.BACKEND.GPTQ_TORCH_ATEN, gptq.BACKEND.TORCH]
    return [gptq.BACKEND.AUTO, gptq.BACKEND.TRITON, gptq.BACKEND.TORCH]


def load_checkpoint(gptq: Any, path: Path, device: str) -> tuple[nn.Module, dict[str, Any]]:
    """Load a GPTQ checkpoint with the first kernel that works; record which one ran
    and why the ones before it were passed over."""
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    passed_over: list[str] = []
    candidates = kernel_candidates(gptq, device)
    for i, backend in enumerate(candidates):
        log = Path(tempfile.gettempdir()) / f"qeval-gptq-load-{os.getpid()}.log"
        try:
            with _library_output(log):
                quantized = gptq.GPTQModel.load(str(path), device=device, backend=backend)
            log.unlink(missing_ok=True)
        except Exception as exc:
            if i == len(candidates) - 1:
                raise
            passed_over.append(f"{backend.value}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        qmodel = quantized.model
        layers = [m for m in qmodel.modules() if isinstance(m, BaseQuantLinear)]
        extra = {"dequantize_compile_undone": _undo_per_layer_compile(layers)} if device == "cpu" else {}
        return qmodel, {
            **extra,
            "layers_quantized": len(layers),
            "kernel_backend": backend.value,
            "kernel": sorted({type(m).__name__ for m in layers}),
            "kernels_passed_over": passed_over,
        }
    raise AssertionError("unreachable")


def _undo_per_layer_compile(layers: list[nn.Module]) -> int:
    """gptqmodel's torch kernel wraps each layer's ``dequantize_weight`` in its own
    ``torch.compile``: on CPU that recompiles per layer (210 on SmolLM2-135M, past
    dynamo's cache limit) and ran 3x slower than eager in steady state (SmolLM2-135M,
    16 new tokens: 8 s eager vs 25-30 s compiled, 2 cores). Restore the eager method;
    returns how many layers were changed."""
    undone = 0
    for layer in layers:
        if "dequantize_weight" in vars(layer):
            del vars(layer)["dequantize_weight"]
            undone += 1
    return undone


@contextlib.contextmanager
def _library_output(log: Path):
    """gptqmodel's terminal output into ``log``; on failure the error carries its last lines."""
    try:
        with output_to(log):
            yield
    except Exception as exc:
        last = tail(log, 15)
        if last and hasattr(exc, "add_note"):
            exc.add_note(f"gptqmodel's last output ({log}):\n{last}")
        raise
