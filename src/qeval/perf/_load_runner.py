"""Load levels in ``qeval perf``: every target driven by the one load generator (:mod:`qeval.load`).

The targets are loaded first (cold start timed, as for batch sizes). Then, round by round,
every level runs, and at each level every target in ABBA order (the first target first in
even rounds, last in odd ones), so drift of the machine or the servers hits every target
alike. Each block sends ``ceil(requests / rounds)`` measured requests (or ``duration / rounds``
seconds of them) after its warm-up requests, under the level's own shape. While a remote
target runs a block, its Prometheus ``/metrics`` is sampled (absent: simply absent).

A block that raises (a bug, not a failed request: those are counted) is recorded as that
target's error at that level, and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from qeval.gates import SLO
from qeval.generation import GenerationSettings
from qeval.load._arrivals import arrival_offsets
from qeval.load._driver import LevelRun, Prepared, run_level
from qeval.load._types import ArrivalSpec, LoadLevel, WorkItem
from qeval.models._base import Message, Prompt
from qeval.perf._config import DEFAULT_SYNTHETIC_PROMPTS, PerfConfig
from qeval.perf._levels import level_point, level_ratios, saturation, with_verdicts
from qeval.perf._plan import abba_order
from qeval.perf._schema import LevelPoint, LoadSettings, Ratio, ServerGaugesSummary

Note = Callable[[str], None]
SYNTHETIC_LOAD_PROMPTS = 64
"""Distinct synthetic requests drawn for load levels when ``--limit`` is not given."""


@dataclass(frozen=True)
class Workload:
    """What one target will be sent: its prepared requests, and how they were made."""

    requests: tuple[Prepared, ...]
    label: str
    timed: bool
    """Every request has a recorded arrival offset (a trace to replay)."""


def workload_items(config: PerfConfig) -> tuple[tuple[WorkItem, ...], str]:
    """The recorded trace's items (time-scaled) and its label; ``((), "")`` without one."""
    if config.workload is None:
        return (), ""
    from pathlib import Path

    from qeval.load._workload import read_workload, time_scaled

    trace = read_workload(Path(config.workload))
    if config.time_scale != 1.0 and trace.timed:
        trace = time_scaled(trace, config.time_scale)
    return trace.items, f"trace {config.workload} ({len(trace.items)} requests)"


def prepare_workload(model: Any, config: PerfConfig, suite: Any, settings: GenerationSettings) -> Workload:
    """The target's requests: a suite's prompts, a trace's, or synthetic lengths."""
    default_max = settings.max_new_tokens
    if suite is not None:
        from qeval.evaluate import build_prompts

        prompts = build_prompts(model, suite)
        return Workload(tuple(Prepared(p, default_max) for p in prompts), f"suite {config.suite}", False)
    items, label = workload_items(config)
    if items:
        requests = tuple(Prepared(model.prepare(i.messages, chat=i.chat), i.max_tokens or default_max, i.offset_s)
                         for i in items)
        return Workload(requests, label, all(i.offset_s is not None for i in items))
    return _synthetic(model, config, default_max)


def _synthetic(model: Any, config: PerfConfig, default_max: int) -> Workload:
    from qeval.load._lengths import parse_lengths
    from qeval.perf._runner import synthetic_prompt

    prompt_spec = config.prompt_lengths or parse_lengths(str(config.prompt_tokens), "--prompt-tokens")
    output_spec = config.output_lengths or parse_lengths(str(config.output_tokens or default_max), "--output-tokens")
    n = config.limit or (DEFAULT_SYNTHETIC_PROMPTS if prompt_spec.is_fixed and output_spec.is_fixed
                         else SYNTHETIC_LOAD_PROMPTS)
    lengths = prompt_spec.draw(n, config.seed)
    outputs = output_spec.draw(n, config.seed + 1)
    made: dict[int, Prompt] = {}
    for length in lengths:
        if length not in made:
            try:
                made[length] = synthetic_prompt(model, length)
            except NotImplementedError:  # an endpoint without a tokenizer
                from qeval.errors import UsageError

                raise UsageError("--prompt-tokens builds prompts of a given number of tokens, which takes the served "
                                 "model's tokenizer: give --tokenizer (its folder, or smollm2-135m), or use "
                                 "--suite or --workload instead.") from None
    label = f"synthetic: prompt {prompt_spec.label} tokens, output {output_spec.label} tokens"
    return Workload(tuple(Prepared(made[p], o) for p, o in zip(lengths, outputs)), label, False)


class _Source:
    """Request ``k`` of a block: the workload cycled, or with ``--unique-prompts`` each one
    re-prepared with a nonce no other request of the run carries."""

    def __init__(self, model: Any, workload: Workload, nonces: itertools.count | None, order: Sequence[int]) -> None:
        self.model, self.workload, self.nonces, self.order = model, workload, nonces, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> Prepared:
        base = self.workload.requests[self.order[k % len(self.order)]]
        if self.nonces is None:
            return base
        nonce = f"[request {next(self.nonces)}] "
        first, *rest = base.prompt.messages
        messages = (Message(first.role, nonce + first.content), *rest)
        return replace(base, prompt=self.model.prepare(messages, chat=base.prompt.chat))


def _offsets(level: LoadLevel, workload: Workload, order: Sequence[int], n: int, seed: int) -> tuple[float, ...]:
    if level.kind == "replay":
        return tuple(workload.requests[i].offset_s or 0.0 for i in order)
    return arrival_offsets(level.value, level.arrival or ArrivalSpec(), n, seed)


def _block_size(config: PerfConfig, level: LoadLevel, workload: Workload) -> tuple[int | None, float | None, int]:
    """``(measured count, duration s, warm-up requests)`` of one block at ``level``."""
    if level.kind == "replay":
        warm = min(config.warmup, max(len(workload.requests) - 1, 0))
        return len(workload.requests) - warm, None, warm
    warm = max(config.warmup, int(level.value)) if level.kind == "concurrency" else config.warmup
    if config.duration_s is not None:
        return None, config.duration_s / config.rounds, warm
    return math.ceil(config.requests / config.rounds), None, warm


def _watch(model: Any) -> Any:
    """A /metrics sampler for a remote target's server; None in-process."""
    from qeval.targets._endpoint import EndpointModel

    if not isinstance(model, EndpointModel):
        return None
    from qeval.load._server_metrics import ServerMetricsSampler, metrics_url

    return ServerMetricsSampler(metrics_url(model.client.settings.base_url))


def _max_in_flight(config: PerfConfig, levels: Sequence[LoadLevel], workload_len: int) -> int:
    """Connections (or engine slots) the run may need at once, never fewer than it asks for."""
    need = [int(lv.value) for lv in levels if lv.kind == "concurrency"]
    if config.max_concurrency is not None:
        need.append(config.max_concurrency)
    elif any(lv.kind != "concurrency" for lv in levels):
        need.append(max(config.requests, workload_len, 64))
    return max(need + [1])


@dataclass(frozen=True)
class LevelsResult:
    points: dict[str, tuple[LevelPoint, ...]]
    ratios: dict[str, tuple[Ratio, ...]]
    saturation: dict[str, str | None]
    order: tuple[str, ...]
    settings: LoadSettings
    interrupted: str | None = None
    """Set when Ctrl-C stopped the run: how far it got (the blocks that finished are kept)."""


def run_levels(config: PerfConfig, entries: Sequence[Any], workloads: dict[str, Workload],
               settings: GenerationSettings, slos: Sequence[SLO], note: Note) -> LevelsResult:
    """Drive every loaded target (``entries``: name, model) at every level; see the module docstring."""
    first = workloads[entries[0].name] if entries else None
    levels = config.levels(trace_timed=bool(first and first.timed))
    runs: dict[tuple[str, int], list[LevelRun]] = {}
    servers: dict[tuple[str, int], list[ServerGaugesSummary | None]] = {}
    failed: dict[tuple[str, int], str] = {}
    order: list[str] = []
    nonces = itertools.count() if config.unique_prompts else None
    sent: dict[str, int] = {}

    stopped: list[str] = []

    async def main() -> None:
        # Ctrl-C cancels this task even when SIGINT was ignored at start-up (a process started with `&`
        # from a script inherits SIG_IGN, and asyncio.run then installs no handler), as the sweep does
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        try:
            assert task is not None
            loop.add_signal_handler(signal.SIGINT, task.cancel)
            handled = True
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            handled = False
        try:
            await blocks()
        except asyncio.CancelledError:  # Ctrl-C: keep every block that finished, say where it stopped
            stopped.append(f"interrupted after {len(order)} of {len(levels) * len(entries) * config.rounds} blocks")
            note(f"{stopped[0]}: writing what was measured")
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)

    async def blocks() -> None:
        async with contextlib.AsyncExitStack() as stack:
            from qeval.load._senders import sender_for

            senders = {}
            for e in entries:
                cap = _max_in_flight(config, levels, len(workloads[e.name].requests))
                senders[e.name] = await stack.enter_async_context(sender_for(e.model, settings, max_in_flight=cap))
            for i, block in enumerate(abba_order([e.name for e in entries], range(len(levels)), config.rounds)):
                entry = next(e for e in entries if e.name == block.precision)
                level = levels[block.batch_size]
                key = (entry.name, block.batch_size)
                if key in failed:
                    continue
                workload = workloads[entry.name]
                count, duration, warm = _block_size(config, level, workload)
                ordered = sorted(range(len(workload.requests)), key=lambda j: workload.requests[j].offset_s or 0.0) \
                    if level.kind == "replay" else list(range(len(workload.requests)))
                offsets = None
                if level.kind != "concurrency":
                    n = warm + (count if count is not None else
                                math.ceil(level.value * (duration or 0.0) * 1.5) + 16)
                    offsets = _offsets(level, workload, ordered, n, config.seed + i)
                note(f"round {block.round}: {entry.name} at {level.label}")
                watch = _watch(entry.model)
                try:
                    run = await run_level(senders[entry.name], _Source(entry.model, workload, nonces, ordered), level,
                                          count=count, duration_s=duration, warmup=warm, offsets_s=offsets,
                                          watch=watch)
                except Exception as exc:  # noqa: BLE001 - one block's bug is recorded, the run goes on
                    failed[key] = f"{type(exc).__name__}: {exc}"
                    note(f"failed {entry.name} at {level.label}: {failed[key]}")
                    continue
                runs.setdefault(key, []).append(run)
                servers.setdefault(key, []).append(_server_summary(run.watched))
                sent[entry.name] = sent.get(entry.name, 0) + len(run.samples)
                order.append(f"{block.round}/{entry.name}/{level.label}")

    asyncio.run(main())
    result = _assemble(config, entries, workloads, levels, runs, servers, failed, slos, tuple(order), sent)
    return replace(result, interrupted=stopped[0] if stopped else None)


def _server_summary(watched: Any) -> ServerGaugesSummary | None:
    from qeval.load._server_metrics import LevelServerMetrics

    if not isinstance(watched, LevelServerMetrics):
        return None
    return ServerGaugesSummary(
        engine=watched.engine, samples=watched.samples, running_mean=watched.running_mean,
        running_max=watched.running_max, waiting_mean=watched.waiting_mean, waiting_max=watched.waiting_max,
        kv_cache_usage_mean=watched.kv_cache_usage_mean, kv_cache_usage_max=watched.kv_cache_usage_max,
        preemptions=watched.preemptions, unavailable=watched.unavailable,
    )


def _assemble(config, entries, workloads, levels, runs, servers, failed, slos, order, sent) -> LevelsResult:
    points: dict[str, tuple[LevelPoint, ...]] = {}
    for e in entries:
        source = "ids" if not _remote(e.model) else ""
        row = []
        for i, level in enumerate(levels):
            key = (e.name, i)
            if key in failed:
                row.append(LevelPoint(level=level, label=level.label, status="error", reason=failed[key]))
                continue
            block_runs = runs.get(key, [])
            _, _, warm = _block_size(config, level, workloads[e.name])
            row.append(level_point(level, block_runs, slos, servers.get(key, []),
                                   warmup_requests=warm * len(block_runs), token_source=source))
        points[e.name] = tuple(row)
    reference = entries[0].name if entries else None
    ratios: dict[str, tuple[Ratio, ...]] = {}
    for e in entries:
        mine = points[e.name]
        is_ref = e.name == reference
        rat: tuple[Ratio, ...] = () if is_ref or reference is None else tuple(
            r for ref, cur in zip(points[reference], mine) for r in level_ratios(ref, cur))
        ratios[e.name] = rat
        points[e.name] = tuple(replace(p, verdicts=with_verdicts(p, slos, rat, is_ref)) if slos else p for p in mine)
    distinct = {name: len({r.prompt.text for r in w.requests}) for name, w in workloads.items()}
    first = next(iter(workloads.values()), None)
    settings = LoadSettings(
        workload=first.label if first else "", levels=tuple(levels),
        requests_per_level=None if config.duration_s is not None else config.requests,
        duration_s=config.duration_s, warmup_requests=config.warmup, unique_prompts=config.unique_prompts,
        distinct_prompts=next(iter(distinct.values()), 0),
        # a prompt went out twice when a target was sent more requests than its workload has distinct prompts
        prompts_repeated=not config.unique_prompts and any(n > distinct[name] for name, n in sent.items()),
        seed=config.seed,
    )
    return LevelsResult(points=points, ratios=ratios, saturation={n: saturation(p) for n, p in points.items()},
                        order=order, settings=settings)


def _remote(model: Any) -> bool:
    from qeval.models._base import abilities_of

    return abilities_of(model).remote
