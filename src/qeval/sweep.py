"""A sweep: every precision × every suite, one model load per precision.

Order of work per precision: load (+ quantize), then per suite the accuracy
pass and the timed pass. A precision that cannot run here becomes ``skipped``
cells; one that breaks (OOM, backend error) becomes ``failed`` cells with the
reason, and the sweep goes on. The report is rewritten (atomically) after each
precision, so an interrupted sweep keeps everything finished so far.

Every finished accuracy-pass batch and every finished precision is also appended
to ``RUN_DIR/journal.jsonl`` (:mod:`qeval.journal`); :func:`qeval.resume.resume_sweep`
continues a killed run from it. The first Ctrl-C finishes the current batch (or aborts the
current timed pass), writes the report marked incomplete and raises
:class:`SweepInterrupted`; a second one stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from qeval.config import SweepConfig
from qeval.errors import BackendUnavailable, QevalError, UsageError
from qeval.evaluate import AccuracyPass, accuracy_pass, effective_settings
from qeval.results import (
    CellResult,
    LatencyStats,
    MemoryStats,
    RunRecord,
    Score,
    to_dict,
)
from qeval.run_id import new_run_id
from qeval.stats import rate
from qeval.timing import TimedPass, timed_pass


class SweepInterrupted(BaseException):
    """Ctrl-C stopped the sweep between batches; ``path`` is the (incomplete) report folder."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(f"sweep interrupted; partial report in {path}")
        self.path = path


class _Ctx:
    """Per-sweep state threaded through the runners: journal, resumed work, Ctrl-C flag."""

    def __init__(self, journal=None, state=None) -> None:
        self.journal = journal
        self.state = state
        self.stop_requested = False

    def done_batches(self, label: str, suite: str) -> dict:
        if self.state is None:
            return {}
        return self.state.batches.get((label, suite), {})

    def check(self) -> None:
        if self.stop_requested:
            raise SweepInterrupted()

    def on_sigint(self, signum, frame) -> None:
        if self.stop_requested:  # second Ctrl-C: stop now (the journal stays consistent)
            raise KeyboardInterrupt
        self.stop_requested = True


class Reporter(Protocol):
    """What the sweep tells its caller (the CLI draws progress bars from it)."""

    def task(self, description: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, text: str) -> None: ...


class _Silent:
    def task(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class _SuiteOutcome:
    suite: Any
    acc: AccuracyPass | None = None
    timed: TimedPass | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


def _empty_cell(precision: str, suite: str, status: str, reason: str, config: dict | None = None) -> CellResult:
    return CellResult(
        precision=precision,
        suite=suite,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        n=0,
        accuracy=None,
        accuracy_ci=None,
        precision_config=config or {},
    )


def _cell(precision: str, outcome: _SuiteOutcome, memory: MemoryStats, loaded, applied: dict) -> CellResult:
    name = outcome.suite.name
    if outcome.acc is None:
        cell = _empty_cell(precision, name, "failed", outcome.error or "unknown error", applied)
        return replace(cell, memory=memory, load_s=loaded.load_s, quantize_s=loaded.quantize_s)
    cases = outcome.acc.cases
    acc = rate([c.passed for c in cases])
    scores = [Score(value=c.score, passed=c.passed, reason=c.reason, details=c.details) for c in cases]
    try:
        metrics = dict(outcome.suite.scorer().aggregate(scores))
    except Exception as exc:  # noqa: BLE001 - a broken aggregate must not sink the cell
        metrics = {}
        outcome.error = f"aggregate failed: {_error_text(exc)}"
    latency: LatencyStats | None = outcome.timed.latency if outcome.timed else None
    return CellResult(
        precision=precision,
        suite=name,
        status="ok",
        # An ok cell can still carry a note, e.g. the timed pass failed after accuracy succeeded.
        reason=outcome.error,
        n=acc.n,
        accuracy=acc.value,
        accuracy_ci=acc.ci,
        metrics=metrics,
        latency=latency,
        memory=memory,
        load_s=loaded.load_s,
        quantize_s=loaded.quantize_s,
        precision_config=applied,
        accuracy_pass_s=outcome.acc.wall_s,
        accuracy_pass_output_tokens=outcome.acc.output_tokens,
        timed_case_ids=outcome.timed.case_ids if outcome.timed else (),
        cases=cases,
    )


def _run_suite(model, suite, config: SweepConfig, reporter: Reporter, label: str = "", ctx: _Ctx | None = None) -> _SuiteOutcome:
    outcome = _SuiteOutcome(suite=suite)
    settings = effective_settings(suite, config.batch_size)
    ctx = ctx or _Ctx()
    journal = ctx.journal
    on_batch = None
    if journal is not None:
        def on_batch(index, cases, tokens, took):
            journal.batch(label, suite.name, index, cases, tokens, took)
    progress = reporter.advance

    def timed_progress(n: int) -> None:
        reporter.advance(n)
        ctx.check()

    try:
        reporter.task(f"accuracy  {suite.name}", len(suite.cases))
        outcome.acc = accuracy_pass(
            model, suite, settings, progress=progress, done=ctx.done_batches(label, suite.name),
            on_batch=on_batch, should_stop=ctx.check,
        )
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        outcome.error = f"accuracy pass failed: {_error_text(exc)}"
        return outcome
    if config.latency_samples <= 0:
        return outcome
    try:
        prompts = [c.prompt for c in outcome.acc.cases]
        reporter.task(f"latency   {suite.name}", config.latency_samples if prompts else 0)
        outcome.timed = timed_pass(
            model,
            prompts,
            [c.id for c in suite.cases],
            settings,
            samples=config.latency_samples,
            warmup=config.warmup_requests,
            progress=timed_progress,
        )
    except Exception as exc:  # noqa: BLE001
        outcome.error = f"timed pass failed: {_error_text(exc)}"
    return outcome


def run_precision(
    source, precision, suites: Sequence, device: str, config: SweepConfig, reporter: Reporter, calibration=None,
    label: str | None = None, ctx: _Ctx | None = None,
) -> list[CellResult]:
    """Load ``source`` at ``precision`` once and evaluate every suite on it: one cell per suite.

    ``label`` names the cells (default: the precision's name); calibration variants
    of one precision get distinct labels (see :mod:`qeval.variants`). Never raises
    for a precision that cannot run or breaks: those become ``skipped`` or
    ``failed`` cells carrying the reason.
    """
    from qeval.memory import peak_memory

    name = label or precision.name

    reason = precision.unavailable_reason(device)
    if reason is not None:
        reporter.note(f"[yellow]skip[/] {name}: {reason}")
        return [_empty_cell(name, s.name, "skipped", reason) for s in suites]
    reporter.note(f"[bold]{name}[/]: {precision.description}")
    try:
        with peak_memory(device) as peak:
            if precision.needs_calibration:
                loaded = source.load(precision.name, device, calibration)
            else:
                loaded = source.load(precision.name, device)
            weights = loaded.model.weights_bytes()
            outcomes = [_run_suite(loaded.model, s, config, reporter, name, ctx) for s in suites]
            loaded.model.close()
    except BackendUnavailable as exc:
        reporter.note(f"[yellow]skip[/] {name}: {exc.reason}")
        return [_empty_cell(name, s.name, "skipped", exc.reason) for s in suites]
    except QevalError as exc:
        reporter.note(f"[red]failed[/] {name}: {exc}")
        return [_empty_cell(name, s.name, "failed", str(exc)) for s in suites]
    except Exception as exc:  # noqa: BLE001 - OOM, backend bugs: recorded, the sweep goes on
        reason = _error_text(exc)
        reporter.note(f"[red]failed[/] {name}: {reason}")
        tb = traceback.format_exc(limit=8)
        return [
            _empty_cell(name, s.name, "failed", reason, {"traceback": tb}) for s in suites
        ]
    # Quantizing measures its own peak, which resets the process/allocator peak that
    # this block started from; the cell's peak is the larger of the two windows.
    quantize_peak = loaded.applied.get("quantize_peak_bytes")
    peak_bytes = max(b for b in (peak.peak_bytes, quantize_peak) if b is not None) if (
        peak.peak_bytes is not None or quantize_peak is not None) else None
    memory = MemoryStats(
        weights_bytes=weights,
        peak_bytes=peak_bytes,
        peak_kind=peak.peak_kind,
        cuda_reserved_bytes=peak.cuda_reserved_bytes,
    )
    return [_cell(name, o, memory, loaded, loaded.applied) for o in outcomes]


def prepare(config: SweepConfig) -> tuple[list, list]:
    """Validate suites and precisions before anything heavy is loaded."""
    from qeval.quantize import get_precision
    from qeval.suites import load_suite

    if not config.precisions:
        raise UsageError("No precision given: pass --precisions, e.g. --precisions bf16,int8 (see `qeval precisions`).")
    if not config.suites:
        raise UsageError("No suite given: pass --suites, e.g. --suites suites/arithmetic.")
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {config.limit}); leave it out to run every case.")
    precisions = [get_precision(name) for name in config.precisions]
    suites = [load_suite(path).limited(config.limit) for path in expand_suite_paths(config.suites)]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"Suite name(s) {', '.join(dupes)} given more than once: each suite may appear once per sweep.")
    return precisions, suites


def load_calibration_for(config: SweepConfig, precisions: Sequence):
    """The calibration sample the calibrated precisions need (``None`` when none does).

    With several sets or seeds configured, this is the first one; :func:`load_calibrations`
    loads them all."""
    loaded = load_calibrations(config, precisions)
    return next(iter(loaded.values()), None)


def load_calibrations(config: SweepConfig, precisions: Sequence) -> dict[tuple[str, int], Any]:
    """Every calibration sample the sweep's variants need, keyed by (set, seed), loaded
    up front so that a bad name or too few texts fails before any model is loaded."""
    from qeval.variants import calibration_names, seeds

    needing = [p.name for p in precisions if p.needs_calibration]
    if not needing:
        return {}
    names = calibration_names(config.calibration)
    if not names:
        raise UsageError(
            f"{', '.join(needing)} need(s) calibration text: pass --calibration NAME (generic, medical, code, "
            "arithmetic under calibration/) or a calibration.jsonl path; several, comma-separated, compare them."
        )
    from qeval.calibration import load_calibration

    return {
        (name, seed): load_calibration(name, samples=config.calibration_samples, seed=seed)
        for name in names
        for seed in seeds(config.calibration_seed, config.calibration_seeds)
    }


def expand_suite_paths(entries: Sequence[str]) -> list[Path]:
    """Suites from the user's list: a suite folder, a folder of suites, a bare name found
    under ./suites/, or a HumanEval/MBPP ``.jsonl`` file (see :func:`qeval.suites.load_suite`)."""
    from qeval.suites import CASES_SUFFIXES

    found: list[Path] = []
    for entry in entries:
        path = Path(entry)
        if not path.exists() and (Path("suites") / entry).is_dir():
            path = Path("suites") / entry
        if (path / "suite.yaml").is_file() or (path.is_file() and path.name.endswith(CASES_SUFFIXES)):
            found.append(path)
            continue
        children = sorted(p.parent for p in path.glob("*/suite.yaml")) if path.is_dir() else []
        if children:
            found.extend(children)
            continue
        raise UsageError(
            f"Suite {entry!r}: {path} is not a suite folder (no suite.yaml), a folder of suites, nor a "
            "HumanEval/MBPP .jsonl file. Give a folder such as suites/arithmetic, suites/ for all of them, "
            "or a file such as HumanEval.jsonl."
        )
    return found


def run_sweep(config: SweepConfig, source=None, reporter: Reporter | None = None) -> tuple[RunRecord, Path]:
    """Run the sweep and write its report; returns the record and the report folder.

    The run is journaled to ``<out_dir>/<run_id>/journal.jsonl`` as it goes, so a
    killed run can be finished with :func:`resume_sweep`."""
    return _sweep(config, source, reporter, state=None)


def resume_sweep(run_dir: str | Path, source=None, reporter: Reporter | None = None) -> tuple[RunRecord, Path]:
    """Finish the sweep journaled in ``run_dir``: see :func:`qeval.resume.resume_sweep`."""
    from qeval.resume import resume_sweep as _resume

    return _resume(run_dir, source, reporter)


def _sweep(config: SweepConfig, source, reporter: Reporter | None, state) -> tuple[RunRecord, Path]:
    from qeval import __version__
    from qeval.environment import fingerprint
    from qeval.journal import JOURNAL_FILE, Journal, JournalError
    from qeval.models import resolve_device, resolve_model
    from qeval.report._write import run_dir
    from qeval.variants import plan

    reporter = reporter or _Silent()
    precisions, suites = prepare(config)
    hashes = {s.name: s.content_hash for s in suites}
    if state is not None and state.header.get("suite_hashes") != hashes:
        was = state.header.get("suite_hashes") or {}
        changed = sorted(n for n in set(was) | set(hashes) if was.get(n) != hashes.get(n))
        raise JournalError(
            f"{state.path}: suite(s) {', '.join(changed)} changed since the run started (content hash differs, "
            "or the suite is gone): resuming would mix results of two suite versions. Restore the suites or "
            "start a new sweep."
        )
    variants = plan(precisions, config.calibration, config.calibration_seed, config.calibration_seeds)
    calibrations = load_calibrations(config, precisions)
    calibration = next(iter(calibrations.values()), None)
    device = resolve_device(config.device)
    source = source or resolve_model(config.model)
    if state is None:
        run_id = config.run_id or new_run_id()
        created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    else:
        run_id, created_at = state.header["run_id"], state.header.get("created_at") or ""
    settings = run_settings(config, suites, device, calibration, variants, calibrations)
    record = RunRecord(
        run_id=run_id,
        created_at=created_at,
        model=source.card,
        environment=fingerprint(device),
        settings=settings,
        cells=(),
    )
    out = Path(config.out_dir)
    folder = run_dir(record, out)
    if state is None:
        if (folder / JOURNAL_FILE).exists():
            raise JournalError(
                f"{folder}: a run with id {run_id!r} is already there; resume it with "
                f"`qeval sweep --resume {folder}` or pick another run id."
            )
        journal = Journal(folder / JOURNAL_FILE)
        journal.append({
            "kind": "header", "run_id": run_id, "created_at": created_at, "qeval_version": __version__,
            "config": to_dict(replace(config, run_id=run_id)), "cwd": os.getcwd(), "suite_hashes": hashes,
            "device": device,
            "model": to_dict(source.card),
        })
    else:
        journal = Journal(state.path, truncate_to=state.valid_bytes)
    ctx = _Ctx(journal, state)
    resumed: dict[str, Any] = {}
    if state is not None:
        partial = sorted({label for (label, _), b in state.batches.items() if b and label not in state.cells})
        resumed = {
            "reused_precisions": sorted(state.cells),
            "partial_precisions": partial,
            "device": device,
            "note": "Resumed from journal.jsonl: finished precisions were reused; in a partial precision the "
                    "finished accuracy batches were reused and the rest generated, and its timed pass (and "
                    "load/memory measurement) was run again in this process.",
        }
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, ctx.on_sigint) if installed else None
    path = None
    loaded_any = False
    try:
        for variant in variants:
            ctx.check()  # a Ctrl-C during the last batch of the previous precision stops here
            if state is not None and variant.label in state.cells:
                cells = list(state.cells[variant.label])
                reporter.note(f"[green]reused[/] {variant.label}: finished before the interruption")
            else:
                sample = calibrations.get((variant.calibration, variant.seed))
                cells = run_precision(
                    source, variant.precision, suites, device, config, reporter, sample, variant.label, ctx)
                loaded_any = True
                journal.cells(variant.label, cells, source.card)
            model = source.card
            if not loaded_any and state is not None and state.model is not None:
                model = state.model  # the card as it stood after the first load
            # source.card may have learnt the parameter count on first load.
            record = replace(record, model=model, cells=record.cells + tuple(cells))
            path = _write(record, out, resumed, incomplete=False, views=variant is variants[-1])
        if state is None or not state.done:
            journal.done()
    except SweepInterrupted:
        path = _write(record, out, resumed, incomplete=True)
        raise SweepInterrupted(path) from None
    finally:
        journal.close()
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    assert path is not None
    return record, path


def _write(record: RunRecord, out: Path, resumed: dict, incomplete: bool, views: bool = True) -> Path:
    from qeval.report import write_report
    from qeval.report._atomic import atomic_write_text
    from qeval.report._markdown import SUMMARY_FILE

    settings = dict(record.settings)
    if resumed:
        settings["resumed"] = resumed
    if incomplete:
        settings["incomplete"] = True
    path = write_report(replace(record, settings=settings), out, views=views)
    if incomplete:
        summary = path / SUMMARY_FILE
        text = summary.read_text(encoding="utf-8")
        banner = (f"> **incomplete** — the sweep was interrupted; resume with "
                  f"`qeval sweep --resume {path}`\n\n")
        atomic_write_text(summary, banner + text)
    return path


def run_settings(
    config: SweepConfig, suites: Sequence, device: str, calibration=None, variants: Sequence = (),
    calibrations: dict | None = None,
) -> dict[str, Any]:
    """The ``settings`` block of a run record: what was asked for, as run.

    ``calibration`` is the first calibration sample; ``calibration_variants`` lists
    every labelled (set, seed) cell when a sweep compares several."""
    calibrations = calibrations or {}
    several = [v for v in variants if v.label != v.precision.name]
    return {
        "calibration": calibration.record() if calibration is not None else None,
        "calibration_variants": [
            {"label": v.label, "precision": v.precision.name, "set": v.calibration, "seed": v.seed,
             "sample_hash": calibrations[(v.calibration, v.seed)].sample_hash}
            for v in several
        ],
        "precisions": list(config.precisions),
        "suites": [str(s.path) for s in suites],
        "suite_hashes": {s.name: s.content_hash for s in suites},
        "device": device,
        "limit": config.limit,
        "latency_samples": config.latency_samples,
        "warmup_requests": config.warmup_requests,
        "batch_size": config.batch_size,
        "generation": {s.name: to_dict(s.generation) for s in suites},
    }
