"""Serving engines qeval starts and stops itself (managed targets).

``--target NAME=vllm:MODEL@PRECISION`` or ``NAME=llamacpp:MODEL@QTYPE``: qeval prepares the
checkpoint, serves it on a loopback port, evaluates it through the endpoint client, and stops it
(:class:`qeval.targets._managed.ManagedTarget`). Engines: :mod:`qeval.engines._vllm`, :mod:`qeval.engines._llamacpp`.
"""

from __future__ import annotations

from typing import Any

from qeval.engines._base import Checkpoint, Engine, Launch
from qeval.engines._precision import EnginePrecision
from qeval.engines._process import ManagedServer, ServerError, free_port, group_alive

ENGINE_NAMES = ("vllm", "llamacpp")


def engine_precision(engine: str, precision: str) -> EnginePrecision:
    """The precision record ``ENGINE:MODEL@PRECISION`` names; :class:`KeyError` for an unknown name."""
    if engine == "vllm":
        from qeval.engines._vllm import PRECISIONS

        return PRECISIONS[precision]
    from qeval.engines._llamacpp import precision_record

    return precision_record(precision)


def engine_precision_names(engine: str) -> tuple[str, ...]:
    if engine == "vllm":
        from qeval.engines._vllm import PRECISIONS

        return tuple(PRECISIONS)
    from qeval.engines._llamacpp import QTYPES

    return ("as-is", *QTYPES)


def make_engine(name: str, executable: str | None = None) -> Any:
    """The :class:`Engine` for a SPEC prefix (``executable``: ``--vllm`` / ``--llamacpp``)."""
    if name == "vllm":
        from qeval.engines._vllm import VllmEngine

        return VllmEngine(executable)
    from qeval.engines._llamacpp import LlamaCppEngine

    return LlamaCppEngine(executable)


__all__ = [
    "ENGINE_NAMES",
    "Checkpoint",
    "Engine",
    "EnginePrecision",
    "Launch",
    "ManagedServer",
    "ServerError",
    "engine_precision",
    "engine_precision_names",
    "free_port",
    "group_alive",
    "make_engine",
]
