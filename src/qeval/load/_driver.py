"""The load generator: sends a workload to one target at one load level and times every request.

Closed loop (``concurrency``): N users, each sending its next request when its last one ended.
Open loop (``rate``, ``replay``): requests are dispatched at their scheduled times whatever the
target does, at most ``max_concurrency`` in flight (the client's cap; a request held back by it
records the wait as ``cap_wait_ms``, outside its latency). Either way the first ``warmup``
requests go out under the same shape and cap and are marked ``warmup`` (not measured), so the
measured requests meet a target that is already busy at this level.

Bounded by a count of measured requests or by a duration (seconds from the first measured
request's send; requests in flight at the end are waited for and counted). Every request's
latencies are taken from the moment it was sent, by the target's sender (an endpoint: as the
socket reads return; in-process: as each step's tokens reach the host).

The generator watches itself: a monitor task measures the event loop's lag (how late a 5 ms
sleep wakes) throughout the level, and each request's dispatch lateness (sent − due, less any
cap wait) is kept; :mod:`qeval.load._summary` flags a level where either is a noticeable share
of the TTFT.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from qeval.load._types import LoadLevel, Reply, RequestSample
from qeval.models._base import Prompt

LAG_TICK_S = 0.005
"""The loop-lag monitor's sleep: a wake-up later than this is time the loop was busy elsewhere."""


class Sender(Protocol):
    """One target as the generator drives it (:mod:`qeval.load._senders`)."""

    async def send(self, prompt: Prompt, max_tokens: int) -> Reply:
        """Run one request; never raise for the target's faults (``Reply.error_kind``)."""
        ...


class LevelWatch(Protocol):
    """Something sampled while a level runs (the server's /metrics): started before, stopped after."""

    async def start(self) -> None: ...

    async def stop(self) -> object: ...


@dataclass(frozen=True)
class Prepared:
    """One request of the workload, prepared for the target: its prompt and output budget."""

    prompt: Prompt
    max_tokens: int
    offset_s: float | None = None


class RequestSource(Protocol):
    """The requests of a block: request ``k`` is ``source[k % len(source)]`` (a list, or one that
    makes each request as it is asked for, e.g. with a nonce)."""

    def __len__(self) -> int: ...

    def __getitem__(self, k: int) -> Prepared: ...


@dataclass(frozen=True)
class LevelRun:
    """Everything one block (a target at a level, one round) measured."""

    level: LoadLevel
    samples: tuple[RequestSample, ...]
    """Measured and warm-up requests, in the order they ended."""
    wall_s: float
    """First measured request sent -> last measured request ended."""
    scheduled_span_s: float | None
    """Open loop: due time of the last measured request minus that of the first (offered rate)."""
    loop_lag_ms: tuple[float, ...]
    watched: object | None = None
    """What the level's watch returned (the server's gauges), if any."""

    @property
    def measured(self) -> tuple[RequestSample, ...]:
        return tuple(s for s in self.samples if not s.warmup)


class _LoopLag:
    """Samples how late the event loop wakes a 5 ms sleep, until stopped."""

    def __init__(self) -> None:
        self.samples_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(LAG_TICK_S)
            self.samples_ms.append(max((time.perf_counter() - t - LAG_TICK_S) * 1000.0, 0.0))

    async def stop(self) -> tuple[float, ...]:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return tuple(self.samples_ms)


def _cycled(requests: RequestSource, k: int) -> Prepared:
    return requests[k % len(requests)]


async def run_level(
    sender: Sender,
    requests: RequestSource,
    level: LoadLevel,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    warmup: int = 0,
    offsets_s: Sequence[float] | None = None,
    watch: LevelWatch | None = None,
) -> LevelRun:
    """Drive ``sender`` at ``level`` (see the module docstring).

    ``requests`` are used in order, cycled. ``count`` measured requests, or as many as are sent
    in ``duration_s`` (exactly one of them). Open loop: ``offsets_s`` are the due times (s from
    the level's start) of warm-up and measured requests together, in order
    (:func:`qeval.load._arrivals.arrival_offsets`, or a trace's offsets); requests due after the
    duration are not sent.
    """
    if not requests:
        raise ValueError("run_level needs at least one request")
    if (count is None) == (duration_s is None):
        raise ValueError("give exactly one of count and duration_s")
    lag = _LoopLag()
    samples: list[RequestSample] = []
    t0 = time.perf_counter()
    first_measured: list[float] = []  # the measured phase's start, once known
    if watch is not None:
        await watch.start()
    lag.start()

    def clock() -> float:
        return time.perf_counter() - t0

    async def one(k: int, due_s: float, dispatched_s: float, cap: asyncio.Semaphore | None) -> None:
        item = _cycled(requests, k)
        if cap is not None:
            await cap.acquire()
        try:
            sent_s = clock()
            if k == warmup:
                first_measured.append(sent_s)
            try:
                reply = await sender.send(item.prompt, item.max_tokens)
            except Exception as exc:  # noqa: BLE001 - a sender's bug fails this request, not the run
                reply = Reply((), (time.perf_counter() - t0 - sent_s) * 1000.0, None, error_kind="client_error",
                              error=f"{type(exc).__name__}: {exc}")
        finally:
            if cap is not None:
                cap.release()
        samples.append(RequestSample(
            index=k, due_s=due_s, sent_s=sent_s,
            cap_wait_ms=max(sent_s - dispatched_s, 0.0) * 1000.0 if cap is not None else 0.0,
            token_times_ms=reply.token_times_ms, e2e_ms=reply.e2e_ms, output_tokens=reply.output_tokens,
            error_kind=reply.error_kind, client_overhead_ms=reply.client_overhead_ms, warmup=k < warmup,
        ))

    def more(k: int) -> bool:
        """Whether request ``k`` (0-based, warm-ups first) is still to be sent."""
        if k < warmup:
            return True
        if count is not None:
            return k < warmup + count
        assert duration_s is not None
        return not first_measured or clock() - first_measured[0] < duration_s

    span: float | None = None
    try:
        if level.kind == "concurrency":
            counter = itertools.count()

            async def user() -> None:
                while True:
                    k = next(counter)
                    if not more(k):
                        return
                    now = clock()
                    await one(k, now, now, None)

            await asyncio.gather(*(user() for _ in range(int(level.value))))
        else:
            span = await _open_loop(one, more, offsets_s or (), warmup, count, duration_s, level, clock)
    finally:
        loop_lag = await lag.stop()
        watched = await watch.stop() if watch is not None else None
    measured = [s for s in samples if not s.warmup]
    start = min((s.sent_s for s in measured), default=0.0)
    end = max((s.sent_s + s.e2e_ms / 1000.0 for s in measured), default=start)
    return LevelRun(level=level, samples=tuple(samples), wall_s=max(end - start, 0.0), scheduled_span_s=span,
                    loop_lag_ms=loop_lag, watched=watched)


async def _open_loop(one, more, offsets_s: Sequence[float], warmup: int, count: int | None,
                     duration_s: float | None, level: LoadLevel, clock) -> float | None:
    """Dispatch each request at its due time (late ones at once); return the measured span."""
    cap = asyncio.Semaphore(level.max_concurrency) if level.max_concurrency else None
    tasks: list[asyncio.Task[None]] = []
    due_measured: list[float] = []
    for k, due in enumerate(offsets_s):
        if count is not None and k >= warmup + count:
            break
        if duration_s is not None and k >= warmup and due_measured and due - due_measured[0] >= duration_s:
            break
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if not more(k):
            break
        if k >= warmup:
            due_measured.append(due)
        tasks.append(asyncio.get_running_loop().create_task(one(k, due, clock(), cap)))
    if tasks:
        await asyncio.gather(*tasks)
    if len(due_measured) < 2:
        return None
    span = due_measured[-1] - due_measured[0]
    return span if span > 0 and not math.isinf(level.value) else None
