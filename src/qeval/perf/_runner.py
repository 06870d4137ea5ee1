"""The load profile: every precision loaded at once, blocks interleaved ABBA, OOM survived.

Order of work: load each precision and time its first request (cold start), then
``warmup`` untimed batch-1 requests and one untimed batch at each larger batch size per
precision (none when ``warmup`` is 0), then ``rounds`` rounds; in each round
every batch size, and at each batch size every precision in ABBA order
(:mod:`qeval.perf._plan`). A block serves the run's prompts in batches of B
(repeating them to fill at least one batch). A precision that cannot load is
recorded as skipped/error; a batch size that runs out of GPU memory is recorded
as ``oom``, memory is freed, and that precision skips the larger batch sizes. The
run never crashes on a precision's failure.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from qeval.generation import GenerationSettings
from qeval.errors import BackendUnavailable, QevalError, UsageError
from qeval.models._base import Prompt, conversation
from qeval.perf._config import DEFAULT_SYNTHETIC_PROMPTS, PerfConfig, validate
from qeval.perf._cost import cost_at, costed_load
from qeval.perf._goodput import goodput, parse_perf_slos
from qeval.perf._plan import Block, abba_order
from qeval.perf._schema import ColdStart, LoadPoint, LoadStatus, PerfRecord, PrecisionPerf, Ratio
from qeval.perf._stats import distribution, rate_interval, ratios, request_latencies

Note = Callable[[str], None]
_FILLER_WORDS = (" the", " a", " and", " x", " 1", " hello")
_TOP_UP = (" x", "x", ".", " ", "1")


def is_out_of_memory(exc: BaseException) -> bool:
    """``torch.cuda.OutOfMemoryError``, or a RuntimeError saying "out of memory" (older
    torch, other allocators)."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_device_memory() -> None:
    """Drop garbage and give cached CUDA blocks back after an OOM."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 500 else text[:497] + "..."


def synthetic_prompt(model: Any, n_tokens: int) -> Prompt:
    """A raw (no chat template) prompt that ``model`` tokenizes to ``n_tokens`` tokens,
    as close as its tokenizer allows (the count actually reached is recorded).

    A filler word repeated as often as fits, then topped up with short pieces one
    token at a time (a filler may take more than one token in a small vocabulary).
    """

    def prompt(body: str) -> Prompt:
        prepared: Prompt = model.prepare(conversation(body), chat=False)
        return prepared

    def count(body: str) -> int:
        return int(model.count_tokens(prompt(body).text))

    overhead = count("")
    best: tuple[int, str] | None = None
    for word in _FILLER_WORDS:
        per_word = max((count(word * 8) - overhead) / 8, 1e-9)
        k = max(int((n_tokens - overhead) / per_word), 0)
        while k > 0 and count(word * k) > n_tokens:
            k -= 1
        body = word * k
        have = count(body)
        while have < n_tokens:
            grown = next(((body + s, c) for s in _TOP_UP for c in [count(body + s)] if have < c <= n_tokens), None)
            if grown is None:
                break
            body, have = grown
        if best is None or abs(have - n_tokens) < best[0]:
            best = (abs(have - n_tokens), body)
        if have == n_tokens:
            break
    assert best is not None
    return prompt(best[1])


@dataclass
class _Served:
    """Everything measured for one precision at one batch size, over the rounds."""

    requests: list = field(default_factory=list)
    round_tokens: list[int] = field(default_factory=list)
    round_wall_s: list[float] = field(default_factory=list)
    peak_growth: int | None = None
    peak_kind: str = ""
    status: LoadStatus = "ok"
    reason: str | None = None
    ran: bool = False


@dataclass
class _Loaded:
    name: str
    model: Any
    prompts: list[Prompt]
    weights_bytes: int | None
    cold: ColdStart
    served: dict[int, _Served] = field(default_factory=dict)
    oom_at: int | None = None
    workload: Any = None
    """Load levels: the target's prepared requests (:class:`qeval.perf._load_runner.Workload`)."""


def _settings(config: PerfConfig, suite: Any) -> GenerationSettings:
    if suite is None:
        return GenerationSettings(max_new_tokens=config.output_tokens or 64)
    s = suite.generation
    return replace(s, max_new_tokens=config.output_tokens) if config.output_tokens else s


def _load_suite(config: PerfConfig) -> Any:
    if config.suite is None:
        return None
    from qeval.suites import load_suite
    from qeval.sweep import expand_suite_paths

    paths = expand_suite_paths([config.suite])
    if len(paths) != 1:
        raise UsageError(f"--suite {config.suite}: holds {len(paths)} suites; give one suite folder.")
    return load_suite(paths[0]).limited(config.limit)


def _prompts(model: Any, config: PerfConfig, suite: Any) -> list[Prompt]:
    if suite is not None:
        from qeval.evaluate import build_prompts

        return build_prompts(model, suite)
    assert config.prompt_tokens is not None, "validate(): without --suite, --prompt-tokens is required"
    return [synthetic_prompt(model, config.prompt_tokens)] * (config.limit or DEFAULT_SYNTHETIC_PROMPTS)


def _batches(prompts: Sequence[Prompt], batch_size: int, at_least: int = 1) -> list[list[Prompt]]:
    """The run's prompts in batches of ``batch_size``, cycled until there are ``at_least``
    requests and the last batch is full."""
    n = max(math.ceil(max(len(prompts), at_least) / batch_size), 1) * batch_size
    cycled = [prompts[i % len(prompts)] for i in range(n)]
    return [cycled[i : i + batch_size] for i in range(0, n, batch_size)]


def _load(target: Any, device: str, config: PerfConfig, suite: Any, settings, note: Note):
    """Provision one target and time its first request: a :class:`_Loaded` or a PrecisionPerf saying why not."""
    from qeval.runner import Unprovisioned, provision

    name = target.spec.name
    loaded = provision(target, device)
    if isinstance(loaded, Unprovisioned):
        if loaded.status == "failed":
            free_device_memory()
        note(f"{'skip' if loaded.status == 'skipped' else 'failed'} {name}: {loaded.reason}")
        return PrecisionPerf(precision=name, status="skipped" if loaded.status == "skipped" else "error",
                             reason=loaded.reason)
    model = loaded.model
    try:
        if not hasattr(model, "generate_timed_batch"):
            model.close()
            return PrecisionPerf(
                precision=name, status="error",
                reason=f"{type(model).__name__} cannot time batched requests (no generate_timed_batch); "
                       "use a Hugging Face model folder or a built-in alias.",
            )
        workload = None
        if config.load_mode:
            from qeval.perf._load_runner import prepare_workload

            workload = prepare_workload(model, config, suite, settings)
            prompts = [r.prompt for r in workload.requests]
        else:
            prompts = _prompts(model, config, suite)
        start = time.perf_counter()
        model.generate_timed_batch(prompts[:1], settings)
        first_ms = (time.perf_counter() - start) * 1000.0
        weights = model.weights_bytes()
    except BackendUnavailable as exc:  # a backend that fails only on first use
        model.close()
        note(f"skip {name}: {exc.reason}")
        return PrecisionPerf(precision=name, status="skipped", reason=exc.reason)
    except UsageError:
        model.close()
        raise
    except Exception as exc:  # noqa: BLE001 - OOM on the first request, backend bugs: recorded, the run goes on
        model.close()
        free_device_memory()
        reason = str(exc) if isinstance(exc, QevalError) else _error_text(exc)
        note(f"failed {name}: {reason}")
        return PrecisionPerf(precision=name, status="error", reason=reason)
    cold = ColdStart(
        load_s=loaded.load_s, quantize_s=loaded.quantize_s, first_request_ms=first_ms,
        total_s=loaded.load_s + loaded.quantize_s + first_ms / 1000.0,
    )
    note(f"loaded {name}: cold start {cold.total_s:.2f} s")
    return _Loaded(name=name, model=model, prompts=prompts, weights_bytes=weights, cold=cold, workload=workload)


def _record_oom(entry: _Loaded, served: _Served, batch_size: int, reason: str) -> None:
    """Free the memory, record ``batch_size`` as ``oom`` and skip it and every larger size.
    Called outside the ``except`` block: its traceback would still pin the batch's tensors."""
    free_device_memory()
    served.status, served.reason = "oom", reason
    entry.oom_at = batch_size if entry.oom_at is None else min(entry.oom_at, batch_size)


def _warm_batch(entry: _Loaded, batch_size: int, settings: GenerationSettings) -> None:
    """One untimed batch of ``batch_size``: the first batch of a new shape pays one-time costs
    (allocator growth, kernel selection) that round 1 would otherwise carry. Running out of
    memory here is recorded as that batch size's ``oom``, as in a timed block."""
    if entry.oom_at is not None and batch_size >= entry.oom_at:
        return
    served = entry.served.setdefault(batch_size, _Served())
    oom: str | None = None
    try:
        entry.model.generate_timed_batch(next(iter(_batches(entry.prompts, batch_size, 1))), settings)
    except Exception as exc:  # noqa: BLE001 - recorded like a timed block's failure
        if not is_out_of_memory(exc):
            served.status, served.reason, served.ran = "error", f"warm-up: {_error_text(exc)}", True
            return
        oom = f"out of memory at batch {batch_size} (warm-up): {str(exc).splitlines()[0][:300]}"
    if oom is not None:
        served.ran = True
        _record_oom(entry, served, batch_size, oom)


def _run_block(entry: _Loaded, block: Block, settings: GenerationSettings, device: str, at_least: int = 1,
               remote: bool = False) -> None:
    from qeval.memory import peak_memory

    served = entry.served.setdefault(block.batch_size, _Served())
    served.ran = True
    oom: str | None = None
    try:
        requests = []
        with peak_memory(device) as peak:
            start = time.perf_counter()
            for chunk in _batches(entry.prompts, block.batch_size, at_least):
                requests.extend(entry.model.generate_timed_batch(chunk, settings))
            wall_s = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - one block's failure is recorded, the run goes on
        if not is_out_of_memory(exc):
            served.status, served.reason = "error", _error_text(exc)
            return
        oom = f"out of memory at batch {block.batch_size} (round {block.round}): {str(exc).splitlines()[0][:300]}"
    if oom is not None:
        _record_oom(entry, served, block.batch_size, oom)
        return
    served.requests.extend(requests)
    served.round_tokens.append(sum(r.output_tokens for r in requests))
    served.round_wall_s.append(wall_s)
    if remote:  # the server's memory is not the client's: unknown, not a wrong number
        served.peak_kind = "unknown (remote endpoint)"
        return
    if peak.peak_bytes is not None and peak.start_bytes is not None:
        growth = max(peak.peak_bytes - peak.start_bytes, 0)
        served.peak_growth = growth if served.peak_growth is None else max(served.peak_growth, growth)
    served.peak_kind = peak.peak_kind


def _point(entry: _Loaded, batch_size: int, warmup: int) -> LoadPoint:
    served = entry.served.get(batch_size)
    if served is None or not served.ran:
        why = (f"not run: batch {entry.oom_at} already ran out of memory" if entry.oom_at is not None
               else "not run")
        return LoadPoint(batch_size=batch_size, status="skipped", reason=why, warmup_requests=warmup)
    if served.status != "ok":
        return LoadPoint(batch_size=batch_size, status=served.status, reason=served.reason,
                         warmup_requests=warmup)
    tokens, wall = sum(served.round_tokens), sum(served.round_wall_s)
    rates = tuple(t / w for t, w in zip(served.round_tokens, served.round_wall_s) if w > 0)
    samples = request_latencies(served.requests)
    peak = None
    if served.peak_growth is not None:
        peak = (entry.weights_bytes or 0) + served.peak_growth
    return LoadPoint(
        batch_size=batch_size,
        status="ok",
        requests=len(served.requests),
        output_tokens=tokens,
        wall_s=wall,
        output_tokens_per_s=tokens / wall if wall > 0 else None,
        output_tokens_per_s_ci=rate_interval(rates),
        requests_per_s=len(served.requests) / wall if wall > 0 else None,
        latency={kind: distribution(values) for kind, values in samples.items()},
        peak_bytes=peak,
        peak_kind=served.peak_kind,
        round_tokens_per_s=rates,
        warmup_requests=warmup,
    )


def run_perf(config: PerfConfig, source: Any = None, note: Note | None = None) -> tuple[PerfRecord, Any]:
    """Measure the load profile of ``config`` and write perf.json + perf.md.

    Returns the record and the folder written to (``config.into`` or OUT/<run-id>/).
    ``source``: a model source to use instead of resolving ``config.model`` (tests).
    """
    from pathlib import Path

    from qeval.perf._write import keep_earlier, write_perf
    from qeval.report._write import run_dir

    record = measure(config, source, note)
    # run_dir refuses a run id that is not one safe folder name
    folder = Path(config.into) if config.into is not None else run_dir(record, config.out_dir)
    kept = keep_earlier(folder)
    if kept is not None and note is not None:
        note(f"an earlier qeval perf run into this folder is kept as {kept} (and its .md)")
    return record, write_perf(record, folder)


def measure(config: PerfConfig, source: Any = None, note: Note | None = None) -> PerfRecord:
    """Run the load profile (no files written)."""
    from pathlib import Path

    from qeval.environment import capture_environment
    from qeval.models import resolve_device
    from qeval.quantize import get_precision
    from qeval.run_id import new_run_id
    from qeval.targets import build_targets

    note = note or (lambda text: None)
    validate(config)
    specs = config.target_specs()
    precisions = [get_precision(str(t.precision)) for t in specs if t.kind == "model"]
    calibrated = [p.name for p in precisions if p.needs_calibration]
    if calibrated:
        raise UsageError(
            f"{', '.join(calibrated)} need(s) calibration, which `qeval perf` does not run: write a checkpoint "
            f"once with `qeval quantize --precision {calibrated[0]} --out DIR` and profile it with "
            "`qeval perf --model DIR --precisions as-is`."
        )
    reference = config.names[0]
    slos = parse_perf_slos(config.slos, reference=reference)
    suite = _load_suite(config)
    device = resolve_device(config.device)
    run_id = Path(config.into).name if config.into else (config.run_id or new_run_id())
    targets = build_targets(specs, source, request_timeout_s=config.request_timeout_s,
                            concurrency=max(config.batch_sizes), engine_executables=dict(config.engine_executables),
                            tokenizer=config.tokenizer,
                            servers_dir=_servers_dir(config, run_id))
    settings = _settings(config, suite)
    created_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    outcomes: dict[str, _Loaded | PrecisionPerf] = {}
    levels = None
    order: list[str] = []
    try:
        for name, target in targets.items():  # cold starts: before any warm-up
            outcomes[name] = _load(target, device, config, suite, settings, note)
        loaded = [o for o in outcomes.values() if isinstance(o, _Loaded)]
        if config.load_mode:
            from qeval.perf._load_runner import run_levels

            levels = run_levels(config, loaded, {e.name: e.workload for e in loaded}, settings, slos, note)
            order = list(levels.order)
        else:
            order = _run_batches(config, loaded, targets, settings, device, note)
        prompt_tokens = _prompt_token_counts(loaded)
    finally:
        for o in outcomes.values():
            if isinstance(o, _Loaded):
                o.model.close()

    results = _assemble(config, outcomes, slos, levels)
    return PerfRecord(
        run_id=run_id,
        created_at=created_at,
        model=config.model or ", ".join(str(t) for t in specs),
        device=device,
        reference=reference,
        batch_sizes=() if config.load_mode else tuple(config.batch_sizes),
        rounds=config.rounds,
        order=tuple(order),
        prompt_tokens=prompt_tokens,
        max_new_tokens=settings.max_new_tokens,
        slos=tuple(str(s) for s in slos),
        precisions=results,
        environment=capture_environment(device),
        load=levels.settings if levels is not None else None,
        incomplete=levels.interrupted if levels is not None else None,
    )


def _run_batches(config: PerfConfig, loaded: list[_Loaded], targets: dict, settings: GenerationSettings,
                 device: str, note: Note) -> list[str]:
    """The batch-size profile: warm-ups, then every block in ABBA order; the order run."""
    for entry in loaded:
        for i in range(config.warmup):
            entry.model.generate_timed_batch([entry.prompts[i % len(entry.prompts)]], settings)
        if config.warmup:
            for batch_size in sorted(b for b in config.batch_sizes if b > 1):
                _warm_batch(entry, batch_size, settings)
    order = []
    for block in abba_order([e.name for e in loaded], config.batch_sizes, config.rounds):
        entry = next(e for e in loaded if e.name == block.precision)
        served = entry.served.get(block.batch_size)
        if (entry.oom_at is not None and block.batch_size >= entry.oom_at) or (served and served.status != "ok"):
            continue
        note(f"round {block.round}: {block.precision} at batch {block.batch_size}")
        remote = targets[entry.name].spec.remote
        _run_block(entry, block, settings, "cpu" if remote else device,
                   math.ceil(config.requests / config.rounds), remote=remote)
        order.append(block.label)
    return order


def _servers_dir(config: PerfConfig, run_id: str) -> Any:
    """Where managed servers write their logs: the run folder's ``servers/`` (as a sweep's)."""
    from pathlib import Path

    return (Path(config.into) if config.into else Path(config.out_dir) / run_id) / "servers"


def _prompt_token_counts(loaded: Sequence[_Loaded]) -> tuple[int, ...]:
    if not loaded or not hasattr(loaded[0].model, "count_tokens"):
        return ()
    first = loaded[0]
    try:
        return tuple(first.model.count_tokens(p.text) for p in first.prompts)
    except NotImplementedError:  # an endpoint without --tokenizer
        return ()


def _assemble(config: PerfConfig, outcomes: dict, slos, levels: Any = None) -> tuple[PrecisionPerf, ...]:
    if levels is not None:
        return _assemble_levels(config, outcomes, levels)
    points: dict[str, tuple[LoadPoint, ...]] = {
        name: tuple(_point(o, b, config.warmup) for b in config.batch_sizes)
        for name, o in outcomes.items() if isinstance(o, _Loaded)
    }
    reference = points.get(config.names[0])
    results = []
    for name, o in outcomes.items():
        if isinstance(o, PrecisionPerf):
            results.append(o)
            continue
        mine = points[name]
        rat: tuple[Ratio, ...] = ()
        if reference is not None and name != config.names[0]:
            rat = tuple(r for ref, cur in zip(reference, mine) for r in ratios(ref, cur))
        good = goodput(slos, mine, o.weights_bytes, rat) if slos else None
        cost = None
        if config.gpu_hour_usd is not None:
            point = costed_load(mine, good)
            cost = cost_at(config.gpu_hour_usd, point.output_tokens_per_s if point else None, config.api_usd_per_1m)
        results.append(PrecisionPerf(
            precision=name, status="ok", weights_bytes=o.weights_bytes, cold_start=o.cold, points=mine,
            ratios=rat, goodput=good, cost=cost,
        ))
    return tuple(results)


def _assemble_levels(config: PerfConfig, outcomes: dict, levels: Any) -> tuple[PrecisionPerf, ...]:
    """Per target: its load levels, ratios against the reference, saturation point and cost there."""
    from qeval.perf._cost import cost_at

    results = []
    for name, o in outcomes.items():
        if isinstance(o, PrecisionPerf):
            results.append(o)
            continue
        points = levels.points[name]
        sat = levels.saturation[name]
        cost = None
        if config.gpu_hour_usd is not None:
            ok = [p for p in points if p.status == "ok" and p.output_tokens_per_s]
            priced = (next((p for p in ok if p.label == sat), None) if config.slos
                      else max(ok, key=lambda p: p.output_tokens_per_s or 0.0, default=None))
            cost = cost_at(config.gpu_hour_usd, priced.output_tokens_per_s if priced else None, config.api_usd_per_1m)
        results.append(PrecisionPerf(
            precision=name, status="ok", weights_bytes=o.weights_bytes, cold_start=o.cold, levels=points,
            level_ratios=levels.ratios[name], saturation=sat, cost=cost,
        ))
    return tuple(results)
