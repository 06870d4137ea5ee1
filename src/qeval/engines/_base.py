"""What a serving engine does for qeval, and the typed records of what it did.

An :class:`Engine` (vLLM, llama.cpp's server) turns ``MODEL@PRECISION`` into a
:class:`Checkpoint` the engine loads (the model as-is, a GPTQ checkpoint ``qeval quantize``
writes, an llm-compressor or GGUF quantization), and a checkpoint into a :class:`Launch`:
the command line that serves it on a port. :class:`qeval.engines.ManagedTarget` runs the
rest of the loop (start, health wait, evaluate through the endpoint client, stop).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Checkpoint:
    """What an engine serves: a folder (HF / compressed-tensors / GPTQ) or a file (GGUF)."""

    path: Path
    sha256: str
    """Content hash of the weights (every file, names included): what was served, by content."""
    weights_bytes: int
    """The checkpoint's weight files as stored."""
    quant_config: Mapping[str, Any] = field(default_factory=dict)
    """The quantization config the engine reads (``config.json``'s ``quantization_config``, a GGUF type)."""
    prepared_by: str = "as-is"
    """How it was made: ``as-is``, ``qeval quantize (gptqmodel ...)``, ``llm-compressor ...``."""
    prepare_s: float = 0.0
    cache: str | None = None
    """``hit``: an earlier run's checkpoint reused; ``miss``: made now; ``None``: served as given."""
    notes: tuple[str, ...] = ()
    """What a reader must know (``requantized from Q4_1 with allow_requantize``)."""


@dataclass(frozen=True)
class Launch:
    """How to serve a checkpoint on a port."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/v1/models"
    """Answers 200 once the engine serves (relative to ``http://HOST:PORT``)."""
    served_model: str = ""
    """The model id requests name."""


class Engine(Protocol):
    """A serving engine qeval can start and stop itself."""

    name: str
    """``vllm``, ``llamacpp``: the SPEC prefix."""

    def precisions(self) -> Sequence[str]:
        """The precision names this engine takes (what ``vllm:MODEL@PRECISION`` may say)."""
        ...

    def check_precision(self, precision: str) -> str | None:
        """Why ``precision`` is not a name this engine takes (a usage error), or ``None``."""
        ...

    def unavailable_reason(self, precision: str) -> str | None:
        """Why this engine cannot serve ``precision`` here, known before trying (not installed,
        no such hardware): a ``skipped`` target. ``None``: try it."""
        ...

    def version(self) -> str | None:
        ...

    def python(self) -> str:
        """An interpreter to run the server's guard with."""
        ...

    def prepare(self, model: str, precision: str, calibration: Any, say: Callable[[str], None]) -> Checkpoint:
        """The checkpoint ``model`` at ``precision`` is served from (made or reused from the cache)."""
        ...

    def launch(self, checkpoint: Checkpoint, precision: str, host: str, port: int,
               engine_args: Sequence[str]) -> Launch:
        ...

    def refusal(self, log_tail: str, precision: str) -> str | None:
        """The engine's own reason, read from its log, when it refused ``precision`` on this
        hardware (a ``skipped`` target) rather than failed (a ``failed`` one)."""
        ...


__all__ = ["Checkpoint", "Engine", "Launch"]
