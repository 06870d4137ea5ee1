"""A cell as data: what to run, small enough to pickle and send to another machine.

A :class:`CellSpec` names a target (:class:`qeval.targets.TargetSpec`), a suite (its folder and
the content hash it must still have), the cases (``limit``), and the generation and timing
settings. It pickles, hashes and has a stable :meth:`CellSpec.key`, so an executor (local, or a
Ray task) can run it anywhere and a cache or journal can recognise it. :func:`run_cells` runs
cells that share a target: it provisions the target once and goes through the one entry point,
:func:`qeval.runner.run_target`.

A :class:`Unit` is what an executor hands out (:mod:`qeval.executors`): one target's cells with
what provisioning them needs beyond the specs (the label its cells carry, the calibration sample,
the target its latency is paired with, accuracy batches finished before a resume), and
:func:`run_unit` runs it wherever it lands, returning a :class:`UnitResult`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qeval.config import SweepConfig
from qeval.errors import UsageError
from qeval.results import CaseResult, CellResult, Environment, ModelCard, to_dict
from qeval.targets import TargetSpec


@dataclass(frozen=True)
class CellSpec:
    """One (target, suite) cell to run."""

    target: TargetSpec
    suite: str
    """The suite's folder (or HumanEval/MBPP file), as the machine that runs the cell will find it."""
    suite_hash: str
    """The suite's content hash when the cell was planned: a changed suite is refused, not run."""
    limit: int | None = None
    batch_size: int | None = None
    latency_samples: int = 8
    warmup_requests: int = 2
    device: str = "auto"
    concurrency: int = 8
    request_timeout_s: float = 120.0

    def key(self) -> str:
        """sha256 of the canonical JSON of every field: equal specs, equal keys, on any machine."""
        text = json.dumps(to_dict(self), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def sweep_config(self) -> SweepConfig:
        return SweepConfig(
            model=None, precisions=(), suites=(self.suite,), device=self.device, limit=self.limit,
            latency_samples=self.latency_samples, warmup_requests=self.warmup_requests, batch_size=self.batch_size,
            targets=(self.target,), concurrency=self.concurrency, request_timeout_s=self.request_timeout_s,
        )


def run_cells(specs: Sequence[CellSpec], source: Any = None, reporter: Any = None) -> list[CellResult]:
    """Run cells of one target (one provisioning for all of them), in order.

    ``source`` (tests, Python callers) serves an in-process target in place of its model spec."""
    if not specs:
        return []
    unit = Unit(label=specs[0].target.name, cells=tuple(specs))
    return list(run_unit(unit, source, reporter).cells)


@dataclass(frozen=True)
class PairedReference:
    """The target a unit's timed passes alternate with (the sweep's first target), as data."""

    label: str
    """The name the reference's cells carry (its variant label)."""
    target: TargetSpec
    calibration: Any = None
    """Its :class:`qeval.calibration.CalibrationSet`, for a calibrated reference."""


@dataclass(frozen=True)
class DoneBatch:
    """An accuracy-pass batch finished before a resume: reused, not generated again."""

    suite: str
    index: int
    cases: tuple[CaseResult, ...]
    output_tokens: int
    wall_s: float


@dataclass(frozen=True)
class Unit:
    """One target's cells: one provisioning, one step of a local sweep, one Ray task.

    Everything in it pickles; nothing in it is a loaded model or an open connection."""

    label: str
    """The name its cells carry (the target's name, or a calibration variant's label)."""
    cells: tuple[CellSpec, ...]
    """One per suite, in the sweep's suite order; all of one target with one set of settings."""
    calibration: Any = None
    """The :class:`qeval.calibration.CalibrationSet` a calibrated target quantizes with (the sample
    itself travels, so the calibration files need not be visible where the unit runs)."""
    reference: PairedReference | None = None
    suite_names: tuple[str, ...] = ()
    """The suites' names, parallel to ``cells`` (for the failed cells of a unit that never ran)."""
    done_batches: tuple[DoneBatch, ...] = ()
    tokenizer: str | None = None
    engine_executables: tuple[tuple[str, str], ...] = ()
    servers_dir: str | None = None
    """Managed targets write their server logs here (``RUN_DIR/servers``)."""
    cwd: str | None = None
    """The folder the run was started from: relative suite and model paths that do not exist where
    the unit runs are looked up under it (a local Ray cluster's workers start elsewhere)."""


@dataclass(frozen=True)
class UnitResult:
    """What running a :class:`Unit` gives back."""

    label: str
    cells: tuple[CellResult, ...]
    card: ModelCard | None = None
    """The target's model card as it stood after provisioning (``None``: the unit never ran)."""
    node: Environment | None = None
    """The fingerprint of the machine that ran it, when that is not the run's own (a Ray node)."""


class _Resumed:
    """What :class:`qeval.runner.RunContext` reads of a journal: the finished batches of one unit."""

    def __init__(self, label: str, done: Sequence[DoneBatch]) -> None:
        self.batches: dict[tuple[str, str], dict[int, Any]] = {}
        for b in done:
            self.batches.setdefault((label, b.suite), {})[b.index] = (b.cases, b.output_tokens, b.wall_s)


def _rebased(entry: str, cwd: str | None) -> str:
    path = Path(entry)
    if cwd is None or path.is_absolute() or path.exists() or not (Path(cwd) / path).exists():
        return entry
    return str(Path(cwd) / path)


def run_unit(unit: Unit, source: Any = None, reporter: Any = None, journal: Any = None) -> UnitResult:
    """Provision the unit's target once and run its cells (:func:`qeval.runner.run_target`).

    ``journal`` (anything with the :class:`qeval.journal.Journal` ``batch`` method) hears of each
    finished accuracy batch. A usage error is raised; a target that cannot run or breaks becomes
    ``skipped`` or ``failed`` cells, as everywhere."""
    from qeval.models import resolve_device
    from qeval.runner import Reference, RunContext, Silent, run_target
    from qeval.suites import load_suite
    from qeval.targets import build_targets

    specs = unit.cells
    if not specs:
        return UnitResult(unit.label, ())
    first = specs[0]
    shared = {(s.target, s.device, s.batch_size, s.latency_samples, s.warmup_requests, s.concurrency) for s in specs}
    if len(shared) != 1:
        raise UsageError("run_cells runs cells of one target with one set of settings; group the specs by target first.")
    suites = []
    for spec in specs:
        suite = load_suite(_rebased(spec.suite, unit.cwd)).limited(spec.limit)
        if suite.content_hash != spec.suite_hash:
            raise UsageError(
                f"Suite {spec.suite}: its content changed since the cell was planned (hash {spec.suite_hash[:12]} -> "
                f"{suite.content_hash[:12]}); plan the run again."
            )
        suites.append(suite)
    config = first.sweep_config()
    wanted = {first.target.name: first.target}
    if unit.reference is not None:
        wanted.setdefault(unit.reference.target.name, unit.reference.target)
    wanted = {name: _with_model(t, unit.cwd) for name, t in wanted.items()}
    targets = build_targets(tuple(wanted.values()), source, concurrency=first.concurrency,
                            request_timeout_s=first.request_timeout_s, tokenizer=unit.tokenizer,
                            servers_dir=Path(unit.servers_dir) if unit.servers_dir else None,
                            engine_executables=dict(unit.engine_executables))
    target = _calibrated(targets[first.target.name], unit.calibration)
    reference = None
    if unit.reference is not None:
        reference = Reference(unit.reference.label,
                              _calibrated(targets[unit.reference.target.name], unit.reference.calibration))
    ctx = RunContext(journal, _Resumed(unit.label, unit.done_batches)) if journal or unit.done_batches else None
    cells = run_target(target, suites, resolve_device(first.device), config, reporter or Silent(), unit.label, ctx,
                       reference=reference)
    return UnitResult(unit.label, tuple(cells), target.card)


def _with_model(spec: TargetSpec, cwd: str | None) -> TargetSpec:
    from dataclasses import replace

    if spec.kind != "model" or not spec.model or cwd is None:
        return spec
    model = _rebased(str(spec.model), cwd)
    return spec if model == spec.model else replace(spec, model=model)


def _calibrated(target: Any, calibration: Any) -> Any:
    """``target`` quantizing with ``calibration`` (in-process and managed targets)."""
    from dataclasses import replace

    from qeval.targets import InProcessTarget
    from qeval.targets._managed import ManagedTarget

    if calibration is not None and isinstance(target, InProcessTarget | ManagedTarget):
        return replace(target, calibration=calibration)
    return target
