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
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qeval.applied import EndpointIdentity
from qeval.cell import Unit, UnitResult
from qeval.executors import LocalExecutor
from qeval.config import SweepConfig
from qeval.errors import UsageError
from qeval.results import (
    CalibrationRecord,
    CalibrationVariant,
    Resumed,
    RunRecord,
    RunSettings,
    to_dict,
)
from qeval.run_id import new_run_id
from qeval.runner import Reference, Reporter, RunContext, Silent, SweepInterrupted, run_target
from qeval.targets._managed import ManagedTarget
from qeval.targets import InProcessTarget, build_targets, precision_of


# The runner's names, kept importable from here for callers of the sweep.
_Ctx = RunContext
_Silent = Silent


def prepare(config: SweepConfig) -> tuple[list, list]:
    """Validate targets and suites before anything heavy is loaded.

    Returns the precision of each target (``None`` for an endpoint), in target order, and the suites."""
    from qeval.quantize import get_precision
    from qeval.suites import load_suite

    if not config.targets and not config.precisions:
        raise UsageError("No precision given: pass --precisions, e.g. --precisions bf16,int8 (see `qeval precisions`), "
                         "or name targets with --target NAME=SPEC.")
    if not config.targets and not config.model:
        raise UsageError("No model given: pass --model (a model folder or smollm2-135m), or name targets with --target NAME=SPEC.")
    if not config.suites:
        raise UsageError("No suite given: pass --suites, e.g. --suites suites/arithmetic.")
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be at least 1 (got {config.limit}); leave it out to run every case.")
    check_executor_of(config)
    specs = config.target_specs()
    precisions = [precision_of(t) for t in specs]
    names = [t.name for t in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        what = "Target(s)" if config.targets else "Precision(s)"
        raise UsageError(f"{what} {', '.join(dupes)} given more than once: give each once per sweep.")
    suites = [load_suite(path).limited(config.limit) for path in expand_suite_paths(config.suites)]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"Suite name(s) {', '.join(dupes)} given more than once: each suite may appear once per sweep.")
    return precisions, suites


def check_executor_of(config: SweepConfig) -> None:
    """Refuse an unknown executor, or Ray where it is not installed, before anything is loaded."""
    from qeval.executors import check_executor, ray_missing
    from qeval.executors._ray import INSTALL

    try:
        check_executor(config.executor)
    except ValueError as exc:
        raise UsageError(f"--executor: {exc}") from None
    if config.executor == "ray" and (why := ray_missing()) is not None:
        raise UsageError(f"--executor ray: {why}. Install it with: {INSTALL}; or leave out --executor to run here.")
    from qeval.options import parse_ray_resources

    try:
        parse_ray_resources(config.ray_resources)
    except ValueError as exc:
        raise UsageError(f"--ray-resources: {exc}") from None


def load_calibrations(config: SweepConfig, precisions: Sequence) -> dict[tuple[str, int], Any]:
    """Every calibration sample the sweep's variants need, keyed by (set, seed), loaded
    up front so that a bad name or too few texts fails before any model is loaded."""
    from qeval.variants import calibration_names, seeds

    needing = [p.name for p in precisions if p is not None and p.needs_calibration]
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
    killed run can be finished with :func:`qeval.resume.resume_sweep`."""
    return _sweep(config, source, reporter, state=None)


def _sweep(config: SweepConfig, source, reporter: Reporter | None, state) -> tuple[RunRecord, Path]:
    from qeval import __version__
    from qeval.environment import capture_environment
    from qeval.journal import JOURNAL_FILE, Journal, JournalError
    from qeval.models import resolve_device
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
    specs = config.target_specs()
    variants = plan(precisions, config.calibration, config.calibration_seed, config.calibration_seeds, specs)
    calibrations = load_calibrations(config, precisions)
    calibration = next(iter(calibrations.values()), None)
    device = resolve_device(config.device)
    done = set(state.cells) if state is not None else set()
    targets = build_targets(specs, source, concurrency=config.concurrency, request_timeout_s=config.request_timeout_s,
                            tokenizer=config.tokenizer, identified_later=done,
                            engine_executables=dict(config.engine_executables))
    if state is None:
        run_id = config.run_id or new_run_id()
        created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    else:
        run_id, created_at = state.header["run_id"], state.header.get("created_at") or ""
    settings = run_settings(config, suites, device, calibration, variants, calibrations)
    record = RunRecord(
        run_id=run_id,
        created_at=created_at,
        model=targets[specs[0].name].card,
        environment=capture_environment(device),
        settings=settings,
        cells=(),
        targets=target_records(targets),
    )
    out = Path(config.out_dir)
    folder = run_dir(record, out)
    for t in targets.values():
        if isinstance(t, ManagedTarget):
            t.servers_dir = folder / "servers"  # RUN_DIR/servers/NAME.log
    # Ray: connected now, so that a wrong address or a missing cluster fails before the run folder exists
    remote = _ray_executor(config, source, reporter, targets) if config.executor == "ray" else None
    try:
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
                "model": to_dict(record.model),
                "endpoints": {t.name: endpoint_identity(t.identity) for t in record.targets if t.identity is not None},
            })
        else:
            check_endpoints(state, record.targets)
            journal = Journal(state.path, truncate_to=state.valid_bytes)
    except BaseException:
        if remote is not None:
            remote.close()
        raise
    ctx = _Ctx(journal, state)
    resumed: Resumed | None = None
    if state is not None:
        partial = sorted({label for (label, _), b in state.batches.items() if b and label not in state.cells})
        resumed = Resumed(
            reused_precisions=tuple(sorted(state.cells)),
            partial_precisions=tuple(partial),
            device=device,
            note="Resumed from journal.jsonl: finished precisions were reused; in a partial precision the "
                 "finished accuracy batches were reused and the rest generated, and its timed pass (and "
                 "load/memory measurement) was run again "
                 + ("in a Ray task." if config.executor == "ray" else "in this process."),
        )
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, ctx.on_sigint) if installed else None
    path = None
    loaded_any = False
    finished: dict[str, tuple] = {}
    cards: dict[str, Any] = {}
    by_label = {v.label: v for v in variants}
    for variant in variants:
        if state is not None and variant.label in state.cells:
            finished[variant.label] = tuple(state.cells[variant.label])
            reporter.note(f"[green]reused[/] {variant.label}: finished before the interruption")
    units = [_unit(v, variants, config, suites, calibrations, state, folder) for v in variants if v.label not in finished]

    def run_here(unit: Unit) -> UnitResult:
        variant = by_label[unit.label]
        target = _calibrated(targets[variant.target.name], variant, calibrations)
        cells = run_target(target, suites, device, config, reporter, variant.label, ctx,
                           reference=_latency_reference(variants, variant, targets, calibrations, config))
        return UnitResult(unit.label, tuple(cells), target.card)

    executor: Any = LocalExecutor(run_here, ctx.check)
    if remote is not None:
        remote.on_batch, remote.check, executor = journal.batch, ctx.check, remote
    try:
        for result in executor.run(units):
            variant = by_label[result.label]
            card = result.card or targets[variant.target.name].card
            journal.cells(result.label, result.cells, card)
            loaded_any = loaded_any or result.card is not None
            finished[result.label] = result.cells
            if config.executor == "ray":  # loaded on another machine: its card is the one that learnt
                cards[variant.target.name] = card
            model = cards.get(variants[0].target.name) or targets[specs[0].name].card
            if not loaded_any and state is not None and state.model is not None:
                model = state.model  # the card as it stood after the first load
            # a source's card may have learnt the parameter count on first load.
            record = replace(record, model=model, targets=target_records(targets, cards),
                             cells=tuple(c for v in variants for c in finished.get(v.label, ())))
            path = _write(record, out, resumed, incomplete=False, views=len(finished) == len(variants))
        if not units:  # every target was finished before a resume: the report is rebuilt from the journal
            model = state.model if state is not None and state.model is not None else record.model
            record = replace(record, model=model, cells=tuple(c for v in variants for c in finished.get(v.label, ())))
            path = _write(record, out, resumed, incomplete=False)
        if state is None or not state.done:
            journal.done()
    except SweepInterrupted:
        path = _write(record, out, resumed, incomplete=True)
        raise SweepInterrupted(path) from None
    finally:
        if remote is not None:
            remote.close()
        journal.close()
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    assert path is not None
    return record, path


def _ray_executor(config: SweepConfig, source: Any, reporter: Reporter, targets: dict[str, Any]) -> Any:
    """The sweep's Ray executor, connected (or its local Ray started)."""
    from qeval.executors import RayExecutor
    from qeval.executors._ray import python_source

    def source_for(unit: Unit) -> Any:
        # a module:attr model of the project, as resolved here (its code travels); any other model is
        # resolved where the task runs
        specs = [unit.cells[0].target] + ([unit.reference.target] if unit.reference else [])
        models = {t.model for t in specs if t.kind == "model"}
        if len(models) != 1 or not python_source(next(iter(models))):
            return None
        return getattr(targets.get(unit.cells[0].target.name), "source", None)

    executor = RayExecutor(config.ray_address, source=source, reporter=reporter, resources=config.ray_resources,
                           source_for=source_for)
    executor.connect()
    return executor


def _unit(variant: Any, variants: Sequence[Any], config: SweepConfig, suites: Sequence[Any], calibrations: dict,
          state: Any, folder: Path) -> Unit:
    """One target's cells as data, for an executor (what the local loop runs, a Ray task gets)."""
    from qeval.cell import CellSpec, DoneBatch, PairedReference

    cells = tuple(
        CellSpec(target=variant.target, suite=str(s.path), suite_hash=s.content_hash, limit=config.limit,
                 batch_size=config.batch_size, latency_samples=config.latency_samples,
                 warmup_requests=config.warmup_requests, device=config.device, concurrency=config.concurrency,
                 request_timeout_s=config.request_timeout_s)
        for s in suites
    )
    first = variants[0]
    reference = None
    if (variant is not first and config.pair_latency and config.latency_samples > 0
            and not first.target.managed and not variant.target.managed):
        reference = PairedReference(first.label, first.target, _calibration_of(first, calibrations))
    done = []
    if state is not None:
        for (label, suite), batches in sorted(state.batches.items()):
            if label == variant.label:
                done += [DoneBatch(suite, index, cases, tokens, wall) for index, (cases, tokens, wall) in sorted(batches.items())]
    return Unit(
        label=variant.label, cells=cells, calibration=_calibration_of(variant, calibrations), reference=reference,
        suite_names=tuple(s.name for s in suites), done_batches=tuple(done), tokenizer=config.tokenizer,
        engine_executables=tuple(config.engine_executables), servers_dir=str(folder / "servers"), cwd=os.getcwd(),
    )


def _calibration_of(variant: Any, calibrations: dict) -> Any:
    if variant.calibration is None or variant.seed is None:
        return None
    return calibrations.get((variant.calibration, variant.seed))


def _write(record: RunRecord, out: Path, resumed: Resumed | None, incomplete: bool, views: bool = True) -> Path:
    from qeval.report import write_report
    from qeval.files import atomic_write_text
    from qeval.report._markdown import SUMMARY_FILE

    settings = replace(record.settings, resumed=resumed, incomplete=incomplete)
    path = write_report(replace(record, settings=settings), out, views=views)
    if incomplete:
        summary = path / SUMMARY_FILE
        text = summary.read_text(encoding="utf-8")
        banner = (f"> **incomplete** — the sweep was interrupted; resume with "
                  f"`qeval sweep --resume {path}`\n\n")
        atomic_write_text(summary, banner + text)
    return path


def endpoint_identity(identity: EndpointIdentity) -> dict[str, Any]:
    """The part of an endpoint's identity that says what it serves (not when it was asked), as the
    journal header holds it."""
    return {"base_url": identity.base_url, "model": identity.model, "version": to_dict(identity.version),
            "server_header": identity.server_header}


def check_endpoints(state: Any, targets: Sequence[Any]) -> None:
    """Refuse to finish a run against an endpoint that now says it serves something else: the finished
    and the new chunks of its cells would come from two different deployments."""
    from qeval.journal import JournalError

    was = state.header.get("endpoints") or {}
    for t in targets:
        if not t.remote or t.name not in was or t.name in state.cells or not t.identity:
            continue
        now = endpoint_identity(t.identity)
        if now != was[t.name]:
            changed = ", ".join(f"{k} {was[t.name].get(k)!r} -> {now.get(k)!r}" for k in now if now.get(k) != was[t.name].get(k))
            raise JournalError(
                f"{state.path}: endpoint target {t.name!r} changed since the run started ({changed}); resuming would "
                "mix answers of two deployments in one cell. Point it back at the same deployment, or start a new sweep."
            )


def _latency_reference(variants: Sequence[Any], variant: Any, targets: dict[str, Any], calibrations: dict,
                       config: SweepConfig) -> Reference | None:
    """The first target, which every other target's timed passes alternate with (``None`` for the
    first itself, a run without latency, or ``--no-latency-pairing``)."""
    first = variants[0]
    if variant is first or not config.pair_latency or config.latency_samples <= 0:
        return None
    target = _calibrated(targets[first.target.name], first, calibrations)
    if target.spec.managed or targets[variant.target.name].spec.managed:
        return None  # one server at a time: a managed target's timed passes run on their own
    return Reference(first.label, target)


def _calibrated(target: Any, variant: Any, calibrations: dict) -> Any:
    """``target`` with the calibration sample ``variant`` names (in-process and managed targets)."""
    if isinstance(target, InProcessTarget | ManagedTarget) and variant.calibration is not None and variant.seed is not None:
        return replace(target, calibration=calibrations.get((variant.calibration, variant.seed)))
    return target



def target_records(targets: dict[str, Any], cards: dict[str, Any] | None = None) -> tuple:
    """The run record's ``targets``: what each name stood for (``cards``: a target's card as the
    machine that loaded it saw it, when that was not this process)."""
    import socket

    from qeval.results import TargetRecord

    host = socket.gethostname()
    return tuple(
        TargetRecord(
            name=name, kind=t.spec.kind, spec=t.spec.spec, card=(cards or {}).get(name) or t.card, remote=t.spec.remote,
            revision=t.spec.revision, identity=getattr(t, "identity", None),
            client_host=host if t.spec.remote else None,
        )
        for name, t in targets.items()
    )


def run_settings(
    config: SweepConfig, suites: Sequence, device: str, calibration=None, variants: Sequence = (),
    calibrations: dict | None = None,
) -> RunSettings:
    """The ``settings`` of a run record: what was asked for, as run.

    ``calibration`` is the first calibration sample; ``calibration_variants`` lists
    every labelled (set, seed) cell when a sweep compares several."""
    calibrations = calibrations or {}
    several = [v for v in variants if v.calibration is not None and v.label != (v.target.name if v.target else v.precision.name)]
    return RunSettings(
        calibration=CalibrationRecord.of(calibration) if calibration is not None else None,
        calibration_variants=tuple(
            CalibrationVariant(
                label=v.label, precision=v.precision.name, calibration_set=v.calibration, seed=v.seed,
                sample_hash=calibrations[(v.calibration, v.seed)].sample_hash,
                target=v.target.name if v.target else None,
            )
            for v in several
        ),
        precisions=tuple(config.precisions),
        targets=tuple(str(t) for t in config.target_specs()),
        concurrency=config.concurrency,
        suites=tuple(str(s.path) for s in suites),
        suite_hashes={s.name: s.content_hash for s in suites},
        device=device,
        limit=config.limit,
        latency_samples=config.latency_samples,
        warmup_requests=config.warmup_requests,
        batch_size=config.batch_size,
        generation={s.name: s.generation for s in suites},
    )
