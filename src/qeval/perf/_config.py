"""What one ``qeval perf`` run measures, and the checks on it that run before any model loads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from pathlib import Path

from qeval.errors import UsageError

DEFAULT_SYNTHETIC_PROMPTS = 8
"""Distinct requests per block with ``--prompt-tokens`` when ``--limit`` is not given."""


@dataclass(frozen=True)
class PerfConfig:
    """One load profile: a model at several precisions, several batch sizes, R rounds."""

    model: str | None
    """With ``precisions``: one target per precision of this model."""
    precisions: tuple[str, ...]
    suite: str | None = None
    """Prompts from this suite (built like the accuracy pass)..."""
    prompt_tokens: int | None = None
    """...or synthetic prompts of this many tokens (with ``output_tokens``)."""
    output_tokens: int | None = None
    """max_new_tokens; with a suite it overrides the suite's own."""
    limit: int | None = None
    """First N suite cases, or N synthetic prompts (default 8). Each block serves them
    all, in batches of B, repeating them to fill at least one batch."""
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    requests: int = 72
    """Timed requests per precision and batch size, over all rounds, at least: 72 is the
    fewest whose p95 has an upper bound (``qeval.stats.min_samples_for_quantile``). Each
    block serves ``ceil(requests / rounds)`` of them, or all the prompts if more, in whole batches."""
    rounds: int = 3
    warmup: int = 2
    """Untimed batch-1 requests per precision before the rounds."""
    slos: tuple[str, ...] = ()
    gpu_hour_usd: float | None = None
    api_usd_per_1m: float | None = None
    device: str = "auto"
    out_dir: str = "reports"
    into: str | None = None
    """Write perf.json/perf.md into this existing run folder instead of OUT/<run-id>/."""
    run_id: str | None = None
    targets: tuple[Any, ...] = ()
    """Named targets (:class:`qeval.targets.TargetSpec`); when given, ``model``/``precisions`` are not used.
    An endpoint's "batch" of B is B concurrent streamed requests."""
    request_timeout_s: float = 120.0

    def target_specs(self) -> tuple[Any, ...]:
        if self.targets:
            return self.targets
        from qeval.targets import targets_from_precisions

        return targets_from_precisions(self.model or "", self.precisions)

    @property
    def names(self) -> tuple[str, ...]:
        """The targets' names (the precisions, without explicit targets); the first is the reference."""
        return tuple(t.name for t in self.targets) if self.targets else self.precisions


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``: positive integers, sorted ascending, each once."""
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            size = int(part)
        except ValueError:
            raise UsageError(
                f"--batch-sizes {text!r}: {part!r} is not a whole number; give positive integers separated "
                "by commas, e.g. --batch-sizes 1,8,32."
            ) from None
        if size < 1:
            raise UsageError(f"--batch-sizes {text!r}: {size} is not a positive batch size; e.g. --batch-sizes 1,8,32.")
        sizes.append(size)
    if not sizes:
        raise UsageError("--batch-sizes is empty; give positive integers separated by commas, e.g. 1,8,32.")
    return tuple(sorted(set(sizes)))


def validate(config: PerfConfig) -> None:
    """Raise :class:`UsageError` naming the flag for any setting that cannot work."""
    if not config.names:
        raise UsageError("No precision given: pass --precisions, e.g. --precisions bf16,int8 (see `qeval precisions`), "
                         "or --target NAME=SPEC.")
    dupes = sorted({p for p in config.names if config.names.count(p) > 1})
    if dupes:
        what = "--target" if config.targets else "--precisions"
        raise UsageError(f"{what} names {', '.join(dupes)} more than once; give each once.")
    if config.suite is not None and config.prompt_tokens is not None:
        raise UsageError("Give either --suite (real prompts) or --prompt-tokens/--output-tokens (synthetic ones), not both.")
    if config.suite is None and config.prompt_tokens is None:
        raise UsageError(
            "No prompts: pass --suite PATH (prompts built from its cases) or --prompt-tokens N --output-tokens M "
            "(synthetic prompts of N tokens, M generated tokens each)."
        )
    if config.prompt_tokens is not None and config.output_tokens is None:
        raise UsageError("--prompt-tokens needs --output-tokens too (how many tokens each request generates).")
    for flag, value in (("--prompt-tokens", config.prompt_tokens), ("--output-tokens", config.output_tokens),
                        ("--limit", config.limit), ("--rounds", config.rounds)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1 (got {value}).")
    if config.warmup < 0:
        raise UsageError(f"--warmup must be 0 or more (got {config.warmup}).")
    if not config.batch_sizes or any(b < 1 for b in config.batch_sizes):
        raise UsageError(f"--batch-sizes must be positive integers (got {config.batch_sizes}).")
    for flag, usd in (("--gpu-hour-usd", config.gpu_hour_usd), ("--api-usd-per-1m", config.api_usd_per_1m)):
        if usd is not None and not (math.isfinite(usd) and usd > 0):
            raise UsageError(f"{flag} must be a positive number of USD (got {usd}).")
    if config.api_usd_per_1m is not None and config.gpu_hour_usd is None:
        raise UsageError("--api-usd-per-1m compares against the GPU's price: give --gpu-hour-usd too.")
    if config.into is not None and not Path(config.into).is_dir():
        raise UsageError(
            f"--into {config.into}: no such folder. Give an existing run folder (reports/<run-id>/ from "
            "`qeval sweep`), or leave --into out to write a new one under --out."
        )
