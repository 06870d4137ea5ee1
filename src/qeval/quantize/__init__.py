"""Precisions: a registry of named quantization schemes and the code that applies them.

    p = get_precision("int4")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=p.load_dtype)
    if (reason := p.unavailable_reason("cpu")) is None:
        model, applied = p.apply(model, "cpu")   # applied: JSON-ready record of the scheme

Adding a precision: one backend module (a frozen config + a ``Precision``
subclass) and one ``PRECISIONS.register`` line below. Entries are lazy, and
backend modules import their library only inside ``apply``. Importing this package
does not import torch: the names from ``_base`` load on first use, so checking a
precision name (``name in PRECISIONS``) stays cheap, e.g. in pytest's collection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qeval.registry import Registry

if TYPE_CHECKING:
    from qeval.quantize._base import (
        GROUP_SIZE_CANDIDATES,
        Backend,
        Precision,
        QuantizeContext,
        choose_group_size,
        quiet,
        select_linears,
    )

_FROM_BASE = ("GROUP_SIZE_CANDIDATES", "Backend", "Precision", "QuantizeContext", "choose_group_size", "quiet",
              "select_linears")


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        from qeval.quantize import _base

        return getattr(_base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PRECISIONS: Registry[Precision] = Registry("precision")
PRECISIONS.register("fp32", "qeval.quantize._dtype:FP32")
PRECISIONS.register("bf16", "qeval.quantize._dtype:BF16")
PRECISIONS.register("fp16", "qeval.quantize._dtype:FP16")
PRECISIONS.register("as-is", "qeval.quantize._asis:AS_IS")
PRECISIONS.register("int8", "qeval.quantize._torchao:INT8")
PRECISIONS.register("w8a8", "qeval.quantize._torchao:W8A8")
PRECISIONS.register("fp8", "qeval.quantize._torchao:FP8")
PRECISIONS.register("int4", "qeval.quantize._quanto:INT4")
PRECISIONS.register("nf4", "qeval.quantize._bnb:NF4")
PRECISIONS.register("hqq4", "qeval.quantize._hqq:HQQ4")
PRECISIONS.register("gptq-int4", "qeval.quantize._gptq:GPTQ_INT4")
PRECISIONS.register("gptq-int8", "qeval.quantize._gptq:GPTQ_INT8")
PRECISIONS.register("w8a8-static", "qeval.quantize._quanto_static:W8A8_STATIC")
PRECISIONS.register("w8a8-static-p999", "qeval.quantize._quanto_static:W8A8_STATIC_P999")


CALIBRATED = frozenset({"gptq-int4", "gptq-int8", "w8a8-static", "w8a8-static-p999"})
"""Names of the precisions that need calibration text (``Precision.needs_calibration``),
known without importing their backends; a test checks the two agree."""


def check_precision_name(name: str) -> None:
    """UnknownNameError (with did-you-mean) unless ``name`` is registered; imports nothing."""
    if name not in PRECISIONS:
        PRECISIONS.get(name)


def get_precision(name: str) -> Precision:
    """The registered precision called ``name``; UnknownNameError (with did-you-mean) if none."""
    return PRECISIONS.get(name)


def list_precisions(device: str) -> list[tuple[str, str, str | None]]:
    """(name, description, reason it cannot run on ``device`` or None) for every precision."""
    rows = []
    for name in PRECISIONS:
        precision = PRECISIONS.get(name)
        rows.append((name, precision.description, precision.unavailable_reason(device)))
    return rows


__all__ = [
    "GROUP_SIZE_CANDIDATES",
    "PRECISIONS",
    "Backend",
    "Precision",
    "QuantizeContext",
    "CALIBRATED",
    "check_precision_name",
    "choose_group_size",
    "get_precision",
    "list_precisions",
    "quiet",
    "select_linears",
]
