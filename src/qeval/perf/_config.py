"""What one ``qeval perf`` run measures, and the checks on it that run before any model loads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from pathlib import Path

from qeval.errors import UsageError
from qeval.load._lengths import LengthSpec
from qeval.load._types import ArrivalSpec, LoadLevel

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
    concurrency: tuple[int, ...] = ()
    """Closed-loop load levels: N users each (``--concurrency``)."""
    rates: tuple[float, ...] = ()
    """Open-loop load levels: requests/s (``--rate``; ``inf`` = all at once)."""
    arrival: ArrivalSpec = ArrivalSpec()
    max_concurrency: int | None = None
    """The client's cap on requests in flight at an open-loop level (None: unbounded)."""
    duration_s: float | None = None
    """Load levels: seconds per target and level over all rounds, instead of ``requests``."""
    workload: str | None = None
    """Load levels: a JSONL trace of requests (``--workload``)."""
    time_scale: float = 1.0
    """A trace's offsets times this (``--time-scale 0.5`` replays twice as fast)."""
    prompt_lengths: LengthSpec | None = None
    """Load levels: synthetic prompt lengths drawn from this (``--prompt-tokens lognormal:...``)."""
    output_lengths: LengthSpec | None = None
    unique_prompts: bool = False
    """Prefix every request with a nonce, so no server prefix cache can serve a repeat."""
    seed: int = 0
    tokenizer: str | None = None
    """Endpoint targets: a tokenizer (folder or built-in alias) for synthetic prompt lengths and for
    output tokens when the server sends no usage."""
    engine_executables: tuple[tuple[str, str], ...] = ()
    """Managed targets: ``(engine, executable)`` the user chose (``--vllm``, ``--llamacpp``)."""

    @property
    def load_mode(self) -> bool:
        """Load levels (closed/open loop, a trace) instead of the batch-size profile."""
        return bool(self.concurrency or self.rates or self.workload)

    def levels(self, trace_timed: bool = False) -> tuple[LoadLevel, ...]:
        """The load levels in the order they run: concurrencies, then rates (ascending); a timed
        trace with neither replays at its own offsets."""
        out = [LoadLevel("concurrency", float(c)) for c in self.concurrency]
        out += [LoadLevel("rate", r, self.arrival, self.max_concurrency) for r in self.rates]
        if not out and trace_timed:
            out.append(LoadLevel("replay", self.time_scale, None, self.max_concurrency))
        return tuple(out)

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
    from qeval.load._arrivals import parse_positive_ints

    return parse_positive_ints(text, "--batch-sizes", "batch size")


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
    if config.load_mode:
        validate_load(config)
    elif config.duration_s is not None or config.unique_prompts or config.max_concurrency is not None:
        raise UsageError("--duration, --unique-prompts and --max-concurrency shape load levels: give --concurrency "
                         "or --rate (or --workload FILE) with them.")
    elif config.prompt_lengths is not None and not config.prompt_lengths.is_fixed:
        raise UsageError(f"--prompt-tokens {config.prompt_lengths.label}: length distributions are for load levels; "
                         "give --concurrency or --rate too, or a fixed --prompt-tokens N for --batch-sizes.")
    if config.suite is None and config.prompt_tokens is None and config.workload is None \
            and config.prompt_lengths is None:
        raise UsageError(
            "No prompts: pass --suite PATH (prompts built from its cases), --prompt-tokens N --output-tokens M "
            "(synthetic prompts of N tokens, M generated tokens each) or, with load levels, --workload FILE.jsonl."
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


def validate_load(config: PerfConfig) -> None:
    """The checks that only load levels need."""
    sources = [flag for flag, given in (("--suite", config.suite is not None), ("--workload", config.workload is not None),
                                        ("--prompt-tokens", config.prompt_lengths is not None
                                         or config.prompt_tokens is not None)) if given]
    if len(sources) > 1:
        raise UsageError(f"Give one source of prompts, not {' and '.join(sources)}: a suite, a recorded workload or "
                         "synthetic lengths.")
    if config.workload is not None and not Path(config.workload).is_file():
        raise UsageError(f"--workload {config.workload}: no such file. Give a JSONL file of requests "
                         "(see `qeval workload describe --help`).")
    if config.batch_sizes != (1, 8, 32):
        raise UsageError("--batch-sizes measures static batches; load levels (--concurrency/--rate) replace them. "
                         "Give one or the other.")
    if config.duration_s is not None and config.requests != 72:
        raise UsageError("Bound each level by --requests N or by --duration T, not both.")
    if config.rates and math.isinf(max(config.rates)) and config.duration_s is not None:
        raise UsageError("--rate inf sends every request at once: bound it with --requests N, not --duration.")
    if config.max_concurrency is not None and config.max_concurrency < 1:
        raise UsageError(f"--max-concurrency must be at least 1 (got {config.max_concurrency}).")
    if not (math.isfinite(config.time_scale) and config.time_scale > 0):
        raise UsageError(f"--time-scale must be a positive number (got {config.time_scale}).")
    if config.prompt_lengths is not None and config.output_lengths is None and config.output_tokens is None:
        raise UsageError("--prompt-tokens needs --output-tokens too (how many tokens each request generates).")
