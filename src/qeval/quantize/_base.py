"""What every precision shares: the handler base class, the backend descriptor,
layer selection, the group-size chooser and the import-noise silencer.

A precision is a frozen config (the scheme, JSON-serialisable) plus a handler
(a :class:`Precision` subclass) that applies it to a loaded model. Backend
modules import their library lazily, inside ``apply``, so that listing
precisions never pays for (or prints the noise of) torchao, quanto, bnb or hqq.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import logging
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    import torch
    from torch import nn

from qeval.errors import BackendUnavailable, UsageError

DEVICES = ("cpu", "cuda")

# Largest first: fewer scales per weight, and the common kernel-friendly size.
GROUP_SIZE_CANDIDATES: tuple[int, ...] = (128, 64, 32)

# Loggers that print import-time or per-call chatter nobody can act on:
# torchao's "Failed to load ..._C_mxfp8...so" (optional CUDA kernels on a CPU build),
# torch's pytree "Enum subclass ... register_constant" deprecation (raised by torchao),
# bitsandbytes' CPU-kernel fallback notices, hqq and quanto; gptqmodel's tokenizer wrapper
# ("Auto fixed pad_token_id") and accelerate's "weights are not tied" while it loads a checkpoint.
_NOISY_LOGGERS = ("torchao", "torch.utils._pytree", "bitsandbytes", "hqq", "optimum.quanto", "gptqmodel", "logbar",
                  "tokenicer", "accelerate.utils.modeling")
_quiet_lock = threading.RLock()


@contextmanager
def quiet() -> Iterator[None]:
    """Silence backend import noise and warnings for the duration of the block.

    Raises the level of the backends' loggers to ERROR and ignores Python
    warnings; errors still surface. Use it around the first import of a backend
    (the noise is printed once per process, at import) and around quantizing.
    Model loading through transformers may import torchao too: wrap it as well.
    """
    with _quiet_lock:
        loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
        saved = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            for lg, level in zip(loggers, saved):
                lg.setLevel(level)


@dataclasses.dataclass(frozen=True)
class Backend:
    """The library behind a precision: how to find it, name it and install it."""

    dist: str
    """Distribution name on PyPI (what ``pip install`` and the report name)."""
    module: str
    """Top-level import name, checked with ``importlib.util.find_spec`` (no import)."""
    pin: str
    """The version qeval is tested with."""
    extra: str
    """The qeval extra that installs it."""

    def missing_reason(self) -> str | None:
        if importlib.util.find_spec(self.module) is not None:
            return None
        return (
            f"{self.dist} is not installed: pip install {self.dist}=={self.pin}"
            f"  (or pip install 'qeval[{self.extra}]')"
        )

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    def load(self, module: str | None = None) -> Any:
        """Import the backend (or one of its submodules) quietly; missing -> BackendUnavailable."""
        reason = self.missing_reason()
        if reason:
            raise BackendUnavailable(reason)
        with quiet():
            return importlib.import_module(module or self.module)


@dataclasses.dataclass(frozen=True)
class QuantizeContext:
    """What a calibrated precision needs beyond the model (others ignore it)."""

    tokenizer: Any = None
    calibration: Any = None
    """A :class:`qeval.calibration.CalibrationSet`."""
    artifact_dir: Any = None
    """Where the quantized checkpoint is (or will be) cached; ``None`` = do not cache."""


def torch_dtype(name: str) -> torch.dtype:
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{name!r} is not a torch dtype")
    return dtype


class PrecisionConfig(Protocol):
    """What every precision's config has (beyond being a frozen dataclass)."""

    @property
    def compute_dtype(self) -> str: ...


ConfigT = TypeVar("ConfigT", bound=PrecisionConfig)


class Precision(ABC, Generic[ConfigT]):
    """A named precision: a frozen ``config`` (the scheme) and the code that applies it.

    Subclasses set ``backend`` (None for plain dtypes) and implement ``_apply``;
    they may add device checks in ``_device_reason``.
    """

    backend: ClassVar[Backend | None] = None
    needs_calibration: ClassVar[bool] = False
    """Calibrated precisions (GPTQ) get a :class:`QuantizeContext` in ``_apply``."""
    calibration_purpose: ClassVar[str] = ""
    """Said in the error when a calibrated precision gets no calibration text, e.g. " to fix its activation ranges"."""

    def __init__(self, name: str, description: str, config: ConfigT) -> None:
        if not dataclasses.is_dataclass(config):
            raise TypeError("a precision's config must be a (frozen) dataclass")
        self.name: str = name
        self.description: str = description
        self.config: ConfigT = config

    def __repr__(self) -> str:
        return f"<Precision {self.name}: {self.description}>"

    @property
    def load_dtype(self) -> torch.dtype | None:
        """The dtype to load the base model in before :meth:`apply` (None: as stored, see ``as-is``)."""
        return torch_dtype(self.config.compute_dtype)

    def unavailable_reason(self, device: str) -> str | None:
        """None if this precision can run on ``device`` ("cpu" or "cuda") here; else why not.

        Never raises and never imports the backend library. On a machine without
        CUDA every precision answers a reason for "cuda".
        """
        try:
            if device not in DEVICES:
                return f"unknown device {device!r}; use one of {', '.join(DEVICES)}"
            import torch

            if device == "cuda" and not torch.cuda.is_available():
                return f"CUDA is not available on this machine (torch {torch.__version__})"
            if self.backend is not None:
                missing = self.backend.missing_reason()
                if missing:
                    return missing
            return self._device_reason(device)
        except Exception as exc:  # a broken environment is a reason, not a crash
            return f"could not check whether {self.name} runs on {device}: {exc!r}"

    def _device_reason(self, device: str) -> str | None:
        import torch

        if device == "cuda" and self.load_dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return f"{self.name} computes in bf16, which this GPU does not support"
        return None

    def apply(
        self, model: nn.Module, device: str, context: QuantizeContext | None = None
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Quantize ``model`` for ``device``; return the model and a JSON-ready record.

        The model should have been loaded in :attr:`load_dtype`; it is moved to
        ``device``. Raises :class:`BackendUnavailable` (with the reason to record)
        when the library, the device or the model's layer widths rule this out.
        """
        reason = self.unavailable_reason(device)
        if reason:
            raise BackendUnavailable(f"{self.name}: {reason}")
        if self.needs_calibration and (context is None or context.calibration is None or context.tokenizer is None):
            raise UsageError(
                f"{self.name} needs calibration text{self.calibration_purpose}: pass --calibration NAME "
                "(e.g. generic, medical) or a calibration.jsonl path."
            )
        cast_from = _cast_if_needed(model, self.load_dtype) if self.load_dtype is not None else None
        import torch

        from qeval.memory import peak_memory

        start = time.perf_counter()
        with quiet(), peak_memory(device) as peak:
            if self.needs_calibration:
                model, details = self._apply(model, device, context)  # type: ignore[call-arg]
            else:
                model, details = self._apply(model, device)
        seconds = time.perf_counter() - start
        model.eval()
        applied: dict[str, Any] = {
            "precision": self.name,
            "description": self.description,
            "library": self.backend.dist if self.backend else "torch",
            "library_version": self.backend.version() if self.backend else torch.__version__,
            "scheme": scheme_dict(self.config),
            "compute_dtype": self.config.compute_dtype,
            "device": device,
            "group_size": None,
            "layers_quantized": 0,
            "layers_skipped": [],
            "cast_from": cast_from,
            "quantize_seconds": round(seconds, 3),
            # Peak while quantizing (calibration passes included): CPU peak RSS of the
            # process, or CUDA peak allocated bytes. Often above the serving peak.
            "quantize_peak_bytes": peak.peak_bytes,
            "quantize_peak_kind": peak.peak_kind,
        }
        applied.update(details)
        return model, applied

    @abstractmethod
    def _apply(self, model: nn.Module, device: str) -> tuple[nn.Module, dict[str, Any]]:
        """Do the work; return the model and the fields that differ from the defaults."""


def scheme_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON types (tuples become lists)."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _cast_if_needed(model: nn.Module, dtype: torch.dtype) -> str | None:
    """Cast floating parameters to ``dtype`` if the model was loaded otherwise.

    Only parameters are cast (buffers such as RoPE's fp32 ``inv_freq`` keep
    their precision, as transformers' own loading does). Returns the old dtype
    name, or None when nothing changed.
    """
    old = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if old <= {dtype}:
        return None
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
    return ",".join(sorted(str(d).removeprefix("torch.") for d in old))


def select_linears(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the nn.Linear layers to quantize, and of those kept in full precision.

    Kept: the output projection (``lm_head``, usually tied to the input
    embedding, whose quality costs are out of proportion to its size) and any
    Linear sharing its weight with an Embedding.
    """
    keep: set[int] = set()
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if out is not None:
        keep.add(id(out))
    from torch import nn

    embedding_ptrs = {
        m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)
    }
    quantize, skipped = [], []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        tied = module.weight.data_ptr() in embedding_ptrs
        if id(module) in keep or tied or name.split(".")[-1] == "lm_head":
            skipped.append(name)
        else:
            quantize.append(name)
    return quantize, skipped


def choose_group_size(
    in_features: Iterable[int],
    precision: str,
    candidates: Iterable[int] = GROUP_SIZE_CANDIDATES,
) -> int:
    """The largest candidate group size that divides every layer's in_features.

    One group size per model (not per layer) so the report can state it in one
    number. Raises :class:`BackendUnavailable` naming the widths when none fits.
    """
    widths = sorted(set(in_features))
    candidates = tuple(candidates)
    if not widths:
        raise BackendUnavailable(f"{precision}: the model has no Linear layer to quantize")
    for group in candidates:
        if all(w % group == 0 for w in widths):
            return group
    bad = ", ".join(str(w) for w in widths)
    sizes = ", ".join(str(c) for c in candidates)
    raise BackendUnavailable(
        f"{precision}: no group size in ({sizes}) divides every quantized layer's "
        f"in_features (widths: {bad}); this precision cannot run on this model. "
        f"It needs hidden and intermediate sizes that are multiples of {candidates[-1]}."
    )


def get_linear(model: nn.Module, name: str) -> nn.Linear:
    """The nn.Linear called ``name`` in ``model`` (a name from :func:`select_linears`)."""
    from torch import nn

    module = model.get_submodule(name)
    if not isinstance(module, nn.Linear):
        raise TypeError(f"{name} is a {type(module).__name__}, not an nn.Linear")
    return module


def in_features_of(model: nn.Module, names: Iterable[str]) -> list[int]:
    return [get_linear(model, n).in_features for n in names]
