"""The ``settings`` of a run record: what was asked for, as run.

Field names are the keys ``results.json`` writes under ``settings``. Built by
:func:`qeval.sweep.run_settings`; the sweep and the pytest plugin add what only they
know with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qeval.generation import GenerationSettings

if TYPE_CHECKING:
    from qeval.calibration import CalibrationSet


@dataclass(frozen=True)
class CalibrationRecord:
    """Which calibration texts were used: everything about the sample except the texts."""

    name: str
    """The set's name: its folder under ``calibration/``, or the file's stem."""
    path: str
    """The ``.jsonl`` file the texts came from."""
    content_hash: str
    """sha256 of the file's bytes."""
    sample_hash: str
    """sha256 of the sampled texts: changes with seed and sample size."""
    samples: int
    """How many texts were sampled."""
    seed: int
    """Seed of the draw."""
    available: int
    """How many texts the file holds."""

    @classmethod
    def of(cls, calibration: CalibrationSet) -> CalibrationRecord:
        """The record of a :class:`qeval.calibration.CalibrationSet`."""
        return cls(
            name=calibration.name, path=str(calibration.path), content_hash=calibration.content_hash,
            sample_hash=calibration.sample_hash, samples=calibration.samples, seed=calibration.seed,
            available=calibration.available,
        )


@dataclass(frozen=True)
class CalibrationVariant:
    """One labelled cell of a sweep that compares calibration sets or seeds."""

    label: str
    """The name the variant's cells carry (``gptq-int4[medical,seed=1]``)."""
    precision: str
    calibration_set: str
    """The calibration set's name (schema 1 wrote it as ``set``)."""
    seed: int
    sample_hash: str
    target: str | None = None
    """The target the variant quantizes (``None`` in records written before targets existed)."""


@dataclass(frozen=True)
class Resumed:
    """How a run was finished from its journal after an interruption."""

    reused_precisions: tuple[str, ...] = ()
    """Targets whose cells were all finished before the interruption and reused as they were."""
    partial_precisions: tuple[str, ...] = ()
    """Targets cut short: finished accuracy batches reused, the rest (and the timed pass) run again."""
    device: str | None = None
    """The device the run was finished on."""
    note: str = ""
    """What resuming reuses and what it runs again, in words."""


@dataclass(frozen=True)
class CachedCell:
    """A cell the pytest plugin took from its cell cache instead of evaluating it."""

    suite: str
    precision: str
    run_id: str
    """The run that evaluated the cell."""


@dataclass(frozen=True)
class RunSettings:
    """What a run was asked to do, as run. Every field has a default: records of schema 1 may lack any."""

    precisions: tuple[str, ...] = ()
    """``--precisions`` as given (empty when the run named targets)."""
    targets: tuple[str, ...] = ()
    """Every target as ``NAME=SPEC``."""
    concurrency: int | None = None
    """Requests in flight at once in an endpoint's accuracy pass."""
    suites: tuple[str, ...] = ()
    """The suites' paths."""
    suite_hashes: Mapping[str, str] = field(default_factory=dict)
    """Suite name → sha256 of its content: tells a comparison that a suite changed between runs."""
    device: str | None = None
    """The resolved device."""
    limit: int | None = None
    """Cases per suite (``None`` = all)."""
    latency_samples: int | None = None
    """Timed batch-1 requests per cell, after warm-up."""
    warmup_requests: int | None = None
    batch_size: int | None = None
    """The accuracy-pass batch size that overrode every suite's (``None``: each suite's own)."""
    generation: Mapping[str, GenerationSettings] = field(default_factory=dict)
    """Suite name → how its completions were generated."""
    calibration: CalibrationRecord | None = None
    """The (first) calibration sample, when a precision calibrates."""
    calibration_variants: tuple[CalibrationVariant, ...] = ()
    """Every labelled (set, seed) cell when a sweep compares several."""
    resumed: Resumed | None = None
    """Set when the run was finished from its journal."""
    incomplete: bool = False
    """The sweep was interrupted: the report holds only what finished."""
    cached_cells: tuple[CachedCell, ...] = ()
    """Cells the pytest plugin reused from its cache."""
    slos: tuple[str, ...] = ()
    """The SLOs the pytest plugin checked, as written."""
