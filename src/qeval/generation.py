"""How completions are generated: a base record every model, suite and pass reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationSettings:
    """How completions are generated. Decoding is always greedy."""

    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    """Completion text is cut at the first of these before scoring (token counts are not)."""
    batch_size: int = 8
    """Batch size of the accuracy pass (left padding)."""


__all__ = ["GenerationSettings"]
