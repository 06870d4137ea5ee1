"""A cell as data: what to run, small enough to pickle and send to another machine.

A :class:`CellSpec` names a target (:class:`qeval.targets.TargetSpec`), a suite (its folder and
the content hash it must still have), the cases (``limit``), and the generation and timing
settings. It pickles, hashes and has a stable :meth:`CellSpec.key`, so an executor (local, or a
Ray task) can run it anywhere and a cache or journal can recognise it. :func:`run_cells` runs
cells that share a target: it provisions the target once and goes through the one entry point,
:func:`qeval.runner.run_target`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qeval.config import SweepConfig
from qeval.errors import UsageError
from qeval.results import CellResult, to_dict
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
    from qeval.models import resolve_device
    from qeval.runner import Silent, run_target
    from qeval.suites import load_suite
    from qeval.targets import build_targets

    if not specs:
        return []
    first = specs[0]
    shared = {(s.target, s.device, s.batch_size, s.latency_samples, s.warmup_requests, s.concurrency) for s in specs}
    if len(shared) != 1:
        raise UsageError("run_cells runs cells of one target with one set of settings; group the specs by target first.")
    suites = []
    for spec in specs:
        suite = load_suite(spec.suite).limited(spec.limit)
        if suite.content_hash != spec.suite_hash:
            raise UsageError(
                f"Suite {spec.suite}: its content changed since the cell was planned (hash {spec.suite_hash[:12]} -> "
                f"{suite.content_hash[:12]}); plan the run again."
            )
        suites.append(suite)
    config = first.sweep_config()
    target = build_targets((first.target,), source, concurrency=first.concurrency,
                           request_timeout_s=first.request_timeout_s)[first.target.name]
    return run_target(target, suites, resolve_device(first.device), config, reporter or Silent())
