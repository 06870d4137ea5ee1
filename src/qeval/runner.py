"""The one entry point that runs cells: a provisioned target × suites → frozen cell results.

Every way of running a cell goes through :func:`run_target`: the sweep, the pytest plugin
and :func:`qeval.cell.run_cells` (what a Ray task runs). ``qeval perf`` shares the step that
turns a target into a loaded model or a recorded reason, :func:`provision`, but keeps every
target loaded at once to interleave their measurements (ABBA), so it drives the loaded models
itself. Per target: provision once (load + quantize, or identify the endpoint), then per
suite the accuracy pass and the timed pass. A target that cannot run here becomes ``skipped`` cells; one that breaks (OOM, backend
error, endpoint gone) becomes ``failed`` cells with the reason, and the caller goes on. A
request that fails for good costs one case (an ``error`` outcome), not the cell.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from qeval.applied import AppliedPrecision
from qeval.config import SweepConfig
from qeval.errors import BackendUnavailable, QevalError, UsageError
from qeval.evaluate import AccuracyPass, accuracy_pass, build_prompts, effective_settings
from qeval.models import LoadedModel
from qeval.results import CellResult, LatencyStats, MemoryStats, MetricValue, Score
from qeval.stats import rate
from qeval.timing import TimedPass, paired_timed_pass, timed_pass

ERROR_RATE = "error_rate"
"""Share of cases whose request failed for good (timeouts, HTTP errors, dropped or truncated
streams), with its Wilson interval: the canary rollback metric (``error_rate <= 0.02``)."""


class SweepInterrupted(BaseException):
    """Ctrl-C stopped the sweep between batches; ``path`` is the (incomplete) report folder."""

    def __init__(self, path: Any = None) -> None:
        super().__init__(f"sweep interrupted; partial report in {path}")
        self.path = path


class RunContext:
    """Per-run state threaded through the runners: journal, resumed work, Ctrl-C flag."""

    def __init__(self, journal: Any = None, state: Any = None) -> None:
        self.journal = journal
        self.state = state
        self.stop_requested = False

    def done_batches(self, label: str, suite: str) -> dict[int, Any]:
        if self.state is None:
            return {}
        done: dict[int, Any] = self.state.batches.get((label, suite), {})
        return done

    def check(self) -> None:
        if self.stop_requested:
            raise SweepInterrupted()

    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # second Ctrl-C: stop now (the journal stays consistent)
            raise KeyboardInterrupt
        self.stop_requested = True


class Reporter(Protocol):
    """What a run tells its caller (the CLI draws progress bars from it)."""

    def task(self, description: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, text: str) -> None: ...


class Silent:
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


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


def empty_cell(name: str, suite: str, status: str, reason: str, config: AppliedPrecision | None = None) -> CellResult:
    return CellResult(
        precision=name,
        suite=suite,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        n=0,
        accuracy=None,
        accuracy_ci=None,
        precision_config=config or AppliedPrecision(),
    )


def _cell(name: str, outcome: _SuiteOutcome, memory: MemoryStats, loaded: Any, applied: AppliedPrecision) -> CellResult:
    suite_name = outcome.suite.name
    if outcome.acc is None:
        cell = empty_cell(name, suite_name, "failed", outcome.error or "unknown error", applied)
        return replace(cell, memory=memory, load_s=loaded.load_s, quantize_s=loaded.quantize_s,
                       scoring=outcome.suite.scoring())
    cases = outcome.acc.cases
    answered = [c for c in cases if c.error is None]  # error outcomes say nothing about quality
    acc = rate([c.passed for c in answered])
    scores = [Score(value=c.score, passed=c.passed, reason=c.reason, details=c.details) for c in answered]
    metrics: dict[str, MetricValue] = {}
    if answered:
        try:
            metrics = dict(outcome.suite.scorer().aggregate(scores))
        except Exception as exc:  # noqa: BLE001 - a broken aggregate must not sink the cell
            outcome.error = f"aggregate failed: {error_text(exc)}"
    errors = rate([c.error is not None for c in cases])
    metrics[ERROR_RATE] = MetricValue(errors.value, errors.ci, errors.n)
    reason = outcome.error
    failed = len(cases) - len(answered)
    if failed:
        kinds: dict[str, int] = {}
        for c in cases:
            if c.error is not None:
                kinds[c.error] = kinds.get(c.error, 0) + 1
        what = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        note = f"{failed} of {len(cases)} requests failed for good ({what}): left out of accuracy, counted in error_rate"
        reason = f"{reason}; {note}" if reason else note
    latency: LatencyStats | None = outcome.timed.latency if outcome.timed else None
    return CellResult(
        precision=name,
        suite=suite_name,
        status="ok" if answered else "failed",
        # An ok cell can still carry a note, e.g. the timed pass failed after accuracy succeeded.
        reason=reason if answered else (reason or "no case was answered"),
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
        scoring=outcome.suite.scoring(),
    )


def _run_accuracy(model: Any, suite: Any, config: SweepConfig, reporter: Reporter, label: str = "",
                  ctx: RunContext | None = None) -> _SuiteOutcome:
    outcome = _SuiteOutcome(suite=suite)
    settings = effective_settings(suite, config.batch_size)
    ctx = ctx or RunContext()
    journal = ctx.journal
    on_batch = None
    if journal is not None:
        def on_batch(index: int, cases: Any, tokens: int, took: float) -> None:
            journal.batch(label, suite.name, index, cases, tokens, took)
    try:
        reporter.task(f"accuracy  {suite.name}", len(suite.cases))
        outcome.acc = accuracy_pass(
            model, suite, settings, progress=reporter.advance, done=ctx.done_batches(label, suite.name),
            on_batch=on_batch, should_stop=ctx.check,
        )
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
        outcome.error = f"accuracy pass failed: {error_text(exc)}"
    return outcome


@dataclass(frozen=True)
class Reference:
    """The target other targets' latency is paired with, under the name its cells carry."""

    label: str
    target: Any


@dataclass(frozen=True)
class PairWith:
    """The reference a target's timed passes alternate with (see :func:`qeval.timing.paired_timed_pass`)."""

    name: str
    model: Any
    """The reference's loaded text model."""
    remote: bool = False


def _run_timed(model: Any, outcome: _SuiteOutcome, config: SweepConfig, reporter: Reporter,
               ctx: RunContext | None = None, remote: bool = False, pair: PairWith | None = None) -> None:
    """The suite's timed pass on the cases the accuracy pass answered (a failed request says nothing
    about latency); paired with ``pair``'s requests when given."""
    if outcome.acc is None or config.latency_samples <= 0:
        return
    suite = outcome.suite
    settings = effective_settings(suite, config.batch_size)
    ctx = ctx or RunContext()

    def progress(n: int) -> None:
        reporter.advance(n)
        ctx.check()

    try:
        answered = [(c, p) for c, p in zip(outcome.acc.cases, outcome.acc.prompts, strict=True) if c.error is None]
        reporter.task(f"latency   {suite.name}" + (f" (paired with {pair.name})" if pair else ""),
                      config.latency_samples if answered else 0)
        if not answered:
            return
        prompts, case_ids = [p for _, p in answered], [c.case_id for c, _ in answered]
        if pair is None:
            outcome.timed = timed_pass(model, prompts, case_ids, settings, samples=config.latency_samples,
                                       warmup=config.warmup_requests, progress=progress, remote=remote)
            return
        by_id = dict(zip((c.id for c in suite.cases), build_prompts(pair.model, suite), strict=True))
        outcome.timed = paired_timed_pass(
            model, prompts, pair.model, [by_id[cid] for cid in case_ids], pair.name, case_ids, settings,
            samples=config.latency_samples, warmup=config.warmup_requests, progress=progress,
            remote=remote or pair.remote,
        )
    except Exception as exc:  # noqa: BLE001
        outcome.error = f"timed pass failed: {error_text(exc)}"


def _paired_passes(model: Any, outcomes: Sequence[_SuiteOutcome], reference: Reference, device: str, config: SweepConfig,
                   reporter: Reporter, ctx: RunContext | None, remote: bool) -> None:
    """Every suite's timed pass, alternating with ``reference``'s requests; unpaired (with the reason
    in each cell) when the reference cannot be provisioned here."""
    ref = provision(reference.target, device)
    if isinstance(ref, Unprovisioned):
        why = f"latency not paired with {reference.label} ({ref.status}: {ref.reason})"
        reporter.note(f"[yellow]note[/] {why}")
        for o in outcomes:
            _run_timed(model, o, config, reporter, ctx, remote)
            if o.acc is not None:
                o.error = f"{o.error}; {why}" if o.error else why
        return
    pair = PairWith(reference.label, ref.model, reference.target.spec.remote)
    try:
        for o in outcomes:
            _run_timed(model, o, config, reporter, ctx, remote, pair)
    finally:
        ref.model.close()


@dataclass(frozen=True)
class Unprovisioned:
    """A target that did not become a loaded model: ``skipped`` (cannot run here) or ``failed``."""

    status: Literal["skipped", "failed"]
    reason: str
    traceback: str | None = None
    """The last frames, for a failure that is not a known error (a backend bug, an OOM)."""


def provision(target: Any, device: str) -> LoadedModel | Unprovisioned:
    """``target`` loaded on ``device`` (quantized, or its endpoint connected), or why not.

    A usage error (the user's mistake) is raised; anything else that stops the target is
    returned as :class:`Unprovisioned`, so the run goes on with the other targets."""
    reason = target.unavailable_reason(device)
    if reason is not None:
        return Unprovisioned("skipped", reason)
    try:
        loaded: LoadedModel = target.provision(device)
    except BackendUnavailable as exc:
        return Unprovisioned("skipped", exc.reason)
    except UsageError:
        raise
    except QevalError as exc:
        return Unprovisioned("failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - OOM, backend bugs: recorded, the run goes on
        return Unprovisioned("failed", error_text(exc), traceback.format_exc(limit=8))
    return loaded


def run_target(
    target: Any, suites: Sequence[Any], device: str, config: SweepConfig, reporter: Reporter,
    label: str | None = None, ctx: RunContext | None = None, reference: Reference | None = None,
) -> list[CellResult]:
    """Provision ``target`` once and evaluate every suite on it: one cell per suite.

    ``label`` names the cells (default: the target's name). ``reference`` (another target) is
    provisioned after the target's accuracy passes and memory window, and every timed pass
    alternates with its requests (:func:`qeval.timing.paired_timed_pass`); when it cannot be
    provisioned the passes run unpaired and the cells say why. Never raises for a target that
    cannot run or breaks: those become ``skipped`` or ``failed`` cells carrying the reason.
    """
    from qeval.memory import peak_memory

    name = label or target.spec.name
    remote = target.spec.remote

    def unprovisioned(why: Unprovisioned) -> list[CellResult]:
        said = "[yellow]skip[/]" if why.status == "skipped" else "[red]failed[/]"
        reporter.note(f"{said} {name}: {why.reason}")
        config = AppliedPrecision(traceback=why.traceback) if why.traceback else None
        return [empty_cell(name, s.name, why.status, why.reason, config) for s in suites]

    if (reason := target.unavailable_reason(device)) is not None:
        return unprovisioned(Unprovisioned("skipped", reason))
    reporter.note(f"[bold]{name}[/]: {target.description}")
    pairing = reference is not None and config.latency_samples > 0
    try:
        with peak_memory("cpu" if remote else device) as peak:
            loaded = provision(target, device)
            if isinstance(loaded, Unprovisioned):
                return unprovisioned(loaded)
            try:
                weights = loaded.model.weights_bytes()
                outcomes = [_run_accuracy(loaded.model, s, config, reporter, name, ctx) for s in suites]
                if not pairing:
                    for o in outcomes:
                        _run_timed(loaded.model, o, config, reporter, ctx, remote)
            except BaseException:
                loaded.model.close()
                raise
        # the memory window is closed: the reference's weights are not the target's
        try:
            if pairing and reference is not None:
                _paired_passes(loaded.model, outcomes, reference, device, config, reporter, ctx, remote)
        finally:
            loaded.model.close()
    except QevalError as exc:
        return unprovisioned(Unprovisioned("failed", str(exc)))
    except Exception as exc:  # noqa: BLE001 - a backend bug past provisioning: recorded, the sweep goes on
        return unprovisioned(Unprovisioned("failed", error_text(exc), traceback.format_exc(limit=8)))
    if remote:
        # Someone else's server: its memory is not ours to see (the client's RSS would be a wrong
        # number). A server qeval started: its checkpoint's bytes and its process group's peak RSS.
        from qeval.targets._endpoint import EndpointModel

        server_peak = loaded.model.server_peak_bytes() if isinstance(loaded.model, EndpointModel) else None
        memory = MemoryStats(weights_bytes=weights, peak_bytes=server_peak,
                             peak_kind="server_rss" if server_peak is not None else "unknown (remote endpoint)")
    else:
        # Quantizing measures its own peak, which resets the process/allocator peak that
        # this block started from; the cell's peak is the larger of the two windows.
        quantize_peak = loaded.applied.quantize_peak_bytes
        peaks = [b for b in (peak.peak_bytes, quantize_peak) if b is not None]
        memory = MemoryStats(
            weights_bytes=weights,
            peak_bytes=max(peaks) if peaks else None,
            peak_kind=peak.peak_kind,
            cuda_reserved_bytes=peak.cuda_reserved_bytes,
        )
    return [_cell(name, o, memory, loaded, loaded.applied) for o in outcomes]
