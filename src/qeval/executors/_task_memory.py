"""How much host memory a Ray task should ask for, where the driver can tell.

Ray's ``memory`` is a scheduling promise, not a limit: a task that asks for nothing can be
packed beside others onto a node too small for them all, and then the OOM killer picks one.
So a task that loads a model asks for an estimate of its peak, computed on the driver from
what it can read without loading anything:

    bytes = BASE_BYTES + parameters x bytes per parameter at the load dtype x PEAK_FACTOR

``parameters`` comes from the checkpoint's safetensors headers (exact), from ``*.bin`` sizes
(stored dtype from config.json), or from what qeval knows of a built-in alias. The load dtype is
the precision's (``fp32`` for quantizing methods that load in full precision, the stored one for
``as-is``). ``PEAK_FACTOR`` covers the quantizer's working copy of a layer, activations and the
KV cache of a batch; ``BASE_BYTES`` the interpreter with torch and transformers imported (about
0.8 GB resident on the CPU build). Measured on the bundled model: see ``docs/ray.md``.

No estimate (``None``, with the reason) for what the driver cannot see (a model only on the
workers, a Python model source), for endpoints (the task only sends requests) and for managed
servers (their memory is the engine's settings: KV cache space, context length): those ask for
``--ray-resources TARGET:memory=BYTES`` when it matters.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from qeval.targets import TargetSpec

BASE_BYTES = 1 << 30
"""The task's own process: Python, torch and transformers imported, the tokenizer, the suites."""
PEAK_FACTOR = 1.5
"""Peak over the weights at their load dtype: a quantizer's copy of the layer it works on,
activations and a batch's KV cache."""

_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1,
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
}


@dataclass(frozen=True)
class TaskMemory:
    """A task's memory request, or why there is none."""

    memory_bytes: int | None
    how: str
    """How it was estimated (``134.5M parameters at 4 B x 1.5 + 1.0 GiB``), or why there is none."""


def task_memory(target: TargetSpec) -> TaskMemory:
    """The memory request of a task that runs ``target`` (see the module)."""
    if target.kind == "openai":
        return TaskMemory(None, "an endpoint's task only sends requests")
    if target.managed:
        return TaskMemory(None, "a managed server's memory is its engine's settings (KV cache space, context length)")
    params = parameter_count(target.model)
    if params is None:
        return TaskMemory(None, f"the driver cannot read {target.model!r}'s checkpoint")
    per_param = _load_bytes_per_parameter(target.precision, target.model)
    if per_param is None:
        return TaskMemory(None, f"precision {target.precision!r} has no known load dtype")
    memory = int(BASE_BYTES + params * per_param * PEAK_FACTOR)
    return TaskMemory(memory, f"{params / 1e6:.1f}M parameters at {per_param} B x {PEAK_FACTOR:g} "
                              f"+ {BASE_BYTES / (1 << 30):.1f} GiB")


def parameter_count(model: str | None) -> int | None:
    """Parameters of the checkpoint ``model`` names, read from file headers (nothing is loaded);
    ``None`` when the driver cannot see it."""
    if not model or model in ("fake",) or model.startswith("replay:"):
        return None
    from qeval.models._builtin import BUILTINS

    if model in BUILTINS:
        return BUILTINS[model].parameters
    try:
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            return None
        tensors = sorted(folder.glob("*.safetensors"))
        if tensors:
            return sum(_safetensors_parameters(f) for f in tensors)
        stored = _DTYPE_BYTES.get(str(_config_dtype(folder)), 4)
        bins = sorted(folder.glob("pytorch_model*.bin"))
        return sum(f.stat().st_size for f in bins) // stored if bins else None
    except (OSError, ValueError):
        return None


def _safetensors_parameters(path: Path) -> int:
    """Elements of every tensor in a safetensors file, from its JSON header."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > 100_000_000:
            raise ValueError(f"{path}: not a safetensors header")
        header = json.loads(f.read(size))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= int(dim)
        total += count
    return total


def _config_dtype(folder: Path) -> str | None:
    config = json.loads((folder / "config.json").read_text())
    return config.get("torch_dtype") or config.get("dtype")


def _load_bytes_per_parameter(precision: str | None, model: str | None) -> int | None:
    """Bytes per parameter the model is loaded at before any quantization."""
    from qeval.quantize import PRECISIONS

    if precision is None or precision not in PRECISIONS:
        return None
    dtype = PRECISIONS.get(precision).load_dtype
    if dtype is None:  # as stored
        stored = None
        try:
            folder = Path(model or "").expanduser()
            stored = _config_dtype(folder) if (folder / "config.json").is_file() else None
        except (OSError, ValueError):
            pass
        return _DTYPE_BYTES.get(str(stored), 4)
    return int(dtype.itemsize)
