"""Memory as it really is: bytes of stored weights, and peak memory over a block.

``weights_bytes`` counts the storage every tensor of a model occupies, as
stored: packed 4-bit data, int8 data and their scales, each once. It is not
``PreTrainedModel.get_memory_footprint``, which reports the logical dtype of
tensor subclasses (torchao, quanto) and misses state held outside parameters
and buffers (hqq's scales, bitsandbytes' quant_state).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qeval.errors import UsageError

# How deep to follow plain objects hanging off modules or tensors
# (bnb: Params4bit -> QuantState -> nested QuantState -> absmax).
_MAX_OBJECT_DEPTH = 4
_PLAIN_TENSOR_TYPES = (torch.Tensor, nn.Parameter)
# nn.Module bookkeeping attributes that never hold weights
_SKIP_MODULE_ATTRS = frozenset({"_modules", "_parameters", "_buffers"})


def weights_bytes(model: nn.Module) -> int:
    """Bytes of real storage held by every tensor of ``model``, each storage counted once.

    Walks parameters, buffers and tensor-valued attributes (also inside dicts,
    lists and plain objects such as bitsandbytes' QuantState) of all modules;
    tensor subclasses are flattened with ``__tensor_flatten__`` down to plain
    tensors; plain tensors are deduplicated by their untyped storage, so tied
    weights and views count once. Tensors on the meta device count zero.
    """
    counter = _StorageCounter()
    for module in model.modules():
        for tensor in module.parameters(recurse=False):
            counter.add_tensor(tensor, 0)
        for buffer in module.buffers(recurse=False):
            counter.add_tensor(buffer, 0)
        for name, value in vars(module).items():
            if name not in _SKIP_MODULE_ATTRS:
                counter.add_object(value, 0)
    return counter.total()


class _StorageCounter:
    def __init__(self) -> None:
        self._storages: dict[tuple[str, int], int] = {}
        self._visited: set[int] = set()
        self._unkeyed = 0  # tensors whose storage cannot be asked for

    def total(self) -> int:
        return sum(self._storages.values()) + self._unkeyed

    def add_object(self, value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            self.add_tensor(value, depth)
        elif isinstance(value, (nn.Module, type, str, bytes, int, float, bool)) or value is None:
            return  # modules are walked by weights_bytes itself
        elif id(value) in self._visited or depth >= _MAX_OBJECT_DEPTH:
            return
        elif isinstance(value, dict):
            self._visited.add(id(value))
            for item in value.values():
                self.add_object(item, depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            self._visited.add(id(value))
            for item in value:
                self.add_object(item, depth + 1)
        elif hasattr(value, "__dict__") and not callable(value):
            self._visited.add(id(value))
            for item in vars(value).values():
                self.add_object(item, depth + 1)

    def add_tensor(self, tensor: torch.Tensor, depth: int) -> None:
        if id(tensor) in self._visited:
            return
        self._visited.add(id(tensor))
        if type(tensor) not in _PLAIN_TENSOR_TYPES and hasattr(tensor, "__tensor_flatten__"):
            inner_names, _ = tensor.__tensor_flatten__()
            for inner in inner_names:
                self.add_object(getattr(tensor, inner, None), depth)
        elif tensor.device.type != "meta":
            try:
                storage = tensor.untyped_storage()
                key = (str(tensor.device), storage.data_ptr())
                self._storages[key] = max(self._storages.get(key, 0), storage.nbytes())
            except (RuntimeError, NotImplementedError):
                self._unkeyed += tensor.numel() * tensor.element_size()
        # Parameter subclasses carry state in attributes (bnb Params4bit.quant_state).
        extra = getattr(tensor, "__dict__", None)
        if extra:
            for item in extra.values():
                self.add_object(item, depth + 1)


@dataclass
class PeakMemory:
    """Filled in when the ``peak_memory`` block exits."""

    device: str
    peak_kind: str
    """"cpu_rss" (the process's peak resident set) or "cuda_allocated" (torch's allocator)."""
    method: str = ""
    """How it was measured: "vmhwm" (/proc peak RSS after a reset), "sampled_rss"
    (psutil every ~10 ms: can miss short spikes) or "torch.cuda"."""
    peak_bytes: int | None = None
    start_bytes: int | None = None
    """RSS or allocated bytes when the block started, for a delta."""
    cuda_reserved_bytes: int | None = None
    """Peak bytes reserved by torch's CUDA caching allocator (None on CPU)."""


@contextmanager
def peak_memory(device: str) -> Iterator[PeakMemory]:
    """Measure peak memory of the block on ``device`` ("cpu" or "cuda").

    CPU: the whole process's peak RSS. It resets the kernel's high-water mark
    (writing 5 to /proc/self/clear_refs) and reads VmHWM at exit; where that is
    not permitted it samples RSS from a thread. CUDA: torch's peak allocated and
    reserved bytes on the current device, after a reset of its peak stats.
    """
    if device == "cuda":
        with _cuda_peak() as result:
            yield result
    elif device == "cpu":
        if _reset_hwm():
            result = PeakMemory(device, "cpu_rss", method="vmhwm", start_bytes=_rss_bytes())
            try:
                yield result
            finally:
                result.peak_bytes = _read_status_kb("VmHWM") * 1024
        else:
            with _sampled_rss() as result:
                yield result
    else:
        raise UsageError(f"peak_memory: unknown device {device!r}; use 'cpu' or 'cuda'")


@contextmanager
def _cuda_peak() -> Iterator[PeakMemory]:
    result = PeakMemory("cuda", "cuda_allocated", method="torch.cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result.start_bytes = torch.cuda.memory_allocated()
    try:
        yield result
    finally:
        torch.cuda.synchronize()
        result.peak_bytes = torch.cuda.max_memory_allocated()
        result.cuda_reserved_bytes = torch.cuda.max_memory_reserved()


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _read_status_kb("VmHWM") > 0
    except (OSError, ValueError):
        return False


def _read_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise ValueError(f"{field} not in /proc/self/status")


def _rss_bytes() -> int:
    try:
        return _read_status_kb("VmRSS") * 1024
    except (OSError, ValueError):
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss


@contextmanager
def _sampled_rss(interval_s: float = 0.01) -> Iterator[PeakMemory]:
    import psutil

    process = psutil.Process(os.getpid())
    result = PeakMemory("cpu", "cpu_rss", method="sampled_rss")
    start = process.memory_info().rss
    result.start_bytes = start
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, name="qeval-rss-sampler", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result.peak_bytes = max(peak[0], process.memory_info().rss)
