"""Frozen configuration records shared by the library, the CLI and the plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qeval.targets import TargetSpec


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: which targets (or model and precisions) and suites, and how much to run."""

    model: str | None
    """With ``precisions``: shorthand for one target per precision (``NAME=model@NAME``)."""
    precisions: tuple[str, ...]
    suites: tuple[str, ...]
    device: str = "auto"
    limit: int | None = None
    """Use the first ``limit`` cases of each suite (``None`` = all)."""
    latency_samples: int = 8
    """Timed batch-1 requests per cell, after warm-up."""
    warmup_requests: int = 2
    batch_size: int | None = None
    """Overrides every suite's accuracy-pass batch size when set."""
    out_dir: str = "reports"
    calibration: str | None = None
    """Calibration set name or path, for calibrated precisions (GPTQ); several, comma-separated,
    make one cell per set (see :mod:`qeval.variants`)."""
    calibration_samples: int = 128
    calibration_seed: int = 0
    calibration_seeds: int = 1
    """Quantize this many times per set, from samples drawn with seeds
    ``calibration_seed, calibration_seed + 1, ...``: the spread calibration alone causes."""
    run_id: str | None = None
    targets: tuple[TargetSpec, ...] = ()
    """Named targets (``--target NAME=SPEC``); when given, ``model``/``precisions`` are not used."""
    concurrency: int = 8
    """Requests in flight at once in an endpoint's accuracy pass."""
    request_timeout_s: float = 120.0
    """An endpoint request that sends nothing for this long is a ``timeout`` (after its retries)."""
    pair_latency: bool = True
    """Alternate every other target's timed requests with the first target's (ABBA), so latency
    ratios against it are measured in one window whatever else the machine does."""
    engine_executables: tuple[tuple[str, str], ...] = ()
    """Managed targets: ``(engine, executable)`` the user chose (``--vllm``, ``--llamacpp``)."""
    tokenizer: str | None = None
    """A tokenizer folder to count an endpoint's output tokens with when it sends no ``usage``."""
    executor: str = "local"
    """Where each target's unit of work runs: ``local`` (this process, in order) or ``ray`` (one Ray
    task per target, see :mod:`qeval.executors`)."""
    ray_address: str = "auto"
    """``--executor ray``: the cluster (``auto``: a running one, else a local Ray for the run)."""
    ray_resources: tuple[str, ...] = ()
    """``--ray-resources``: ``[TARGET:]KEY=VALUE,...`` asked of Ray per task (see :mod:`qeval.options`)."""

    def target_specs(self) -> tuple[TargetSpec, ...]:
        """The targets of the run: the explicit ones, else one per precision of ``model``."""
        if self.targets:
            return self.targets
        from qeval.targets import targets_from_precisions

        return targets_from_precisions(self.model or "", self.precisions)
