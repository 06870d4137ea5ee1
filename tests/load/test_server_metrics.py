"""A server's own /metrics during a load level (qeval.load._server_metrics).

The parser reads recorded real texts (vLLM 0.32.0 CPU, with stats on and off) and texts written
from SGLang's, TGI's and llama.cpp's sources (tests/data/metrics/README.md says which is which);
hypothesis renders arbitrary gauges with prometheus_client and feeds junk. The sampler runs
against small aiohttp servers on loopback: scripted gauges, a 404 (llama-cpp-python's recorded
answer), a closed port, a slow endpoint. Two tests use the real vLLM.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from qeval.load._server_metrics import (
    ENGINE_METRICS,
    NO_ENDPOINT,
    NO_GAUGES,
    LevelServerMetrics,
    ServerGauges,
    ServerMetricsSampler,
    metrics_url,
    probe,
    read_gauges,
    summarize_level,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
KNOWN_NAMES = tuple(name for spec in ENGINE_METRICS for name in spec.names)


# --- metrics_url ------------------------------------------------------------------------------

@pytest.mark.parametrize(("base", "expected"), [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/metrics"),
    ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/metrics"),
    ("http://localhost:30000", "http://localhost:30000/metrics"),
    ("https://gpu.example:443/team/llm/v1?x=1", "https://gpu.example:443/team/llm/metrics"),
])
def test_metrics_sit_beside_v1_at_the_root(base: str, expected: str) -> None:
    assert metrics_url(base) == expected


# --- recorded and from-source texts ---------------------------------------------------------------

def test_a_real_vllm_scrape_under_load() -> None:
    gauges = read_gauges((DATA / "vllm-0.32.0-cpu.txt").read_text())
    # 4 completions running, 4 of 181 usable KV blocks, no preemption: what vLLM said at the time
    assert gauges == ServerGauges("vllm", requests_running=4.0, requests_waiting=0.0,
                                  kv_cache_usage=gauges.kv_cache_usage, preemptions_total=0.0)
    assert gauges.kv_cache_usage == pytest.approx(4 / 181, rel=1e-9)


def test_vllm_with_stats_off_serves_metrics_but_none_of_its_gauges() -> None:
    text = (DATA / "vllm-0.32.0-cpu-disable-log-stats.txt").read_text()
    assert "http_requests_total" in text and "vllm:" not in text
    assert read_gauges(text) == ServerGauges()


@pytest.mark.parametrize(("name", "expected"), [
    ("vllm-v0-from-source.txt", ServerGauges("vllm", 5.0, 2.0, 0.61, 4.0)),
    ("sglang-from-source.txt", ServerGauges("sglang", 7.0, 12.0, 0.94, 3.0)),
    ("tgi-from-source.txt", ServerGauges("tgi", 4.0, 5.0, None, None)),
    ("llama-server-from-source.txt", ServerGauges("llamacpp", 2.0, 3.0, None, None)),
    ("llama-server-pre-13660-from-source.txt", ServerGauges("llamacpp", 1.0, 0.0, 0.63, None)),
])
def test_each_engines_names(name: str, expected: ServerGauges) -> None:
    assert read_gauges((DATA / name).read_text()) == expected


def test_counts_add_over_engine_cores_and_usage_is_the_fullest() -> None:
    text = "\n".join([
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
        'vllm:num_requests_running{engine="1",model_name="m"} 2.0',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0',
        'vllm:num_requests_waiting{engine="1",model_name="m"} 4.0',
        # the per-reason breakdown of the same waiting requests must not be added again
        'vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="capacity"} 1.0',
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5',
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.94',
        'vllm:num_preemptions_total{engine="0",model_name="m"} 5.0',
        'vllm:num_preemptions_total{engine="1",model_name="m"} 2.0',
        'vllm:num_preemptions_created{engine="0",model_name="m"} 1.7e9',
    ])
    assert read_gauges(text) == ServerGauges("vllm", 5.0, 5.0, 0.94, 7.0)


def test_the_new_kv_name_wins_over_the_deprecated_one() -> None:
    text = 'vllm:gpu_cache_usage_perc{model_name="m"} 0.2\nvllm:kv_cache_usage_perc{model_name="m"} 0.7\n'
    assert read_gauges(text).kv_cache_usage == 0.7


def test_a_malformed_line_is_skipped_alone_and_nan_is_absent() -> None:
    text = 'vllm:num_requests_running{model_name="m} 3\nvllm:num_requests_waiting 2\nvllm:kv_cache_usage_perc NaN\n'
    assert read_gauges(text) == ServerGauges("vllm", None, 2.0, None, None)


@pytest.mark.parametrize("text", ["", "<html><body>Not Found</body></html>", '{"detail":"Not Found"}',
                                  "http_requests_total 3\n", "\x00\xff garbage {{{"])
def test_no_known_names_is_all_none(text: str) -> None:
    assert read_gauges(text) == ServerGauges()


_value = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
_fraction = st.floats(min_value=0, max_value=1, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_value, _value, _fraction, _value), min_size=1, max_size=4))
def test_gauges_rendered_by_prometheus_client_read_back(cores: list[tuple[float, float, float, float]]) -> None:
    registry = CollectorRegistry()
    labels = ["model_name", "engine"]
    running = Gauge("vllm:num_requests_running", "running", labels, registry=registry)
    waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=registry)
    kv = Gauge("vllm:kv_cache_usage_perc", "kv", labels, registry=registry)
    preempted = Counter("vllm:num_preemptions", "preemptions", labels, registry=registry)  # as vLLM 0.32 names it
    for i, (r, w, k, p) in enumerate(cores):
        running.labels("m", str(i)).set(r)
        waiting.labels("m", str(i)).set(w)
        kv.labels("m", str(i)).set(k)
        preempted.labels("m", str(i)).inc(p)
    got = read_gauges(generate_latest(registry).decode())
    assert got.engine == "vllm"
    assert got.requests_running == pytest.approx(math.fsum(c[0] for c in cores), rel=1e-12)
    assert got.requests_waiting == pytest.approx(math.fsum(c[1] for c in cores), rel=1e-12)
    assert got.kv_cache_usage == max(c[2] for c in cores)
    assert got.preemptions_total == pytest.approx(math.fsum(c[3] for c in cores), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1"))))
def test_junk_never_raises(text: str) -> None:
    got = read_gauges(text)
    if not any(name in text for name in KNOWN_NAMES):
        assert got == ServerGauges()


_REAL_VLLM = (DATA / "vllm-0.32.0-cpu.txt").read_text().splitlines()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_REAL_VLLM)), st.text()), max_size=8))
def test_junk_lines_among_real_ones_change_nothing(junk: list[tuple[int, str]]) -> None:
    lines = list(_REAL_VLLM)
    for at, text in sorted(junk, reverse=True):
        for line in text.splitlines():
            if not line.lstrip().startswith(KNOWN_NAMES):
                lines.insert(at, line)
    assert read_gauges("\n".join(lines)) == read_gauges("\n".join(_REAL_VLLM))


# --- the level's record (pure) ---------------------------------------------------------------------

def test_a_level_record_from_its_polls() -> None:
    polls = [ServerGauges("vllm", 0.0, 0.0, 0.1, 5.0), ServerGauges(), ServerGauges("vllm", 3.0, 2.0, 0.94, 6.0),
             ServerGauges("vllm", 1.0, 0.0, 0.5, 7.0)]
    level = summarize_level(polls, polls_failed=1, ticks_skipped=2, interval_s=0.5)
    means = (level.running_mean, level.waiting_mean, level.kv_cache_usage_mean)
    assert means == pytest.approx((4 / 3, 2 / 3, 1.54 / 3))
    assert replace(level, running_mean=None, waiting_mean=None, kv_cache_usage_mean=None) == LevelServerMetrics(
        samples=3, engine="vllm", running_mean=None, running_max=3.0, waiting_mean=None, waiting_max=2.0,
        kv_cache_usage_mean=None, kv_cache_usage_max=0.94, preemptions=2, unavailable=None,
        polls_failed=1, ticks_skipped=2, interval_s=0.5,
    )


def test_a_counter_that_drops_was_restarted() -> None:
    polls = [ServerGauges("vllm", preemptions_total=v) for v in (5.0, 7.0, 1.0, 3.0)]
    assert summarize_level(polls).preemptions == 2 + 1 + 2


def test_one_reading_says_nothing_about_preemptions() -> None:
    assert summarize_level([ServerGauges("vllm", 1.0, 0.0, 0.2, 4.0)]).preemptions is None
    assert summarize_level([ServerGauges("tgi", 1.0, 0.0)] * 3).preemptions is None


def test_nothing_sampled_says_why() -> None:
    assert summarize_level([]).unavailable == NO_GAUGES
    level = summarize_level([ServerGauges()], unavailable="connection refused at 127.0.0.1:9")
    assert (level.samples, level.engine, level.running_mean, level.unavailable) == (
        0, None, None, "connection refused at 127.0.0.1:9")


# --- the sampler against loopback servers -----------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A loopback aiohttp server answering every path with ``handler``; yields its /metrics URL."""
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        await runner.cleanup()


def vllm_text(running: float, waiting: float, kv: float, preemptions: float) -> str:
    labels = '{engine="0",model_name="m"}'
    return (f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{labels} {running}\n"
            f"vllm:num_requests_waiting{labels} {waiting}\nvllm:kv_cache_usage_perc{labels} {kv}\n"
            f"vllm:num_preemptions_total{labels} {preemptions}\n")


def test_the_sampler_follows_gauges_that_change() -> None:
    # running 0 -> 3 -> 1, KV 0.1 -> 0.94, preemptions 5 -> 7; then the last values hold
    script = [(0, 0, 0.1, 5), (3, 2, 0.5, 5), (3, 4, 0.94, 6), (1, 0, 0.94, 7)]
    served: list[tuple[float, float, float, float]] = []

    async def metrics(request: web.Request) -> web.Response:
        served.append(script[min(len(served), len(script) - 1)])
        return web.Response(text=vllm_text(*served[-1]), content_type="text/plain")

    async def main() -> LevelServerMetrics:
        async with serving(metrics) as url:
            sampler = ServerMetricsSampler(url, interval_s=0.05)
            await sampler.start()
            assert len(served) == 1  # the baseline poll is taken before start() returns
            await asyncio.sleep(0.4)
            return await sampler.stop()

    level = asyncio.run(main())
    assert len(served) >= 6
    assert level.samples == len(served)  # start, every tick, and the closing poll at stop
    assert level.engine == "vllm" and level.unavailable is None and level.polls_failed == 0
    assert level.running_mean == pytest.approx(math.fsum(s[0] for s in served) / len(served))
    assert level.running_max == 3.0
    assert level.waiting_max == 4.0
    assert level.kv_cache_usage_mean == pytest.approx(math.fsum(s[2] for s in served) / len(served))
    assert level.kv_cache_usage_max == 0.94
    assert level.preemptions == 2
    assert level.interval_s == 0.05


def test_no_endpoint_is_recorded_once_and_not_polled_again() -> None:
    # llama-cpp-python 0.3.36's own answer to GET /metrics
    body = (DATA / "llama-cpp-python-0.3.36-metrics-404.json").read_text()
    hits: list[str] = []

    async def not_found(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=404, text=body, content_type="application/json")

    async def main() -> tuple[LevelServerMetrics, str | None]:
        async with serving(not_found) as url:
            sampler = ServerMetricsSampler(url, interval_s=0.02)
            await sampler.start()
            await asyncio.sleep(0.2)
            return await sampler.stop(), await probe(url)

    level, probed = asyncio.run(main())
    assert level.unavailable == probed == NO_ENDPOINT
    assert (level.samples, level.engine, level.running_max, level.preemptions) == (0, None, None, None)
    assert hits == ["/metrics", "/metrics"]  # the sampler's one poll, then probe's


def test_a_closed_port_is_a_reason_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nobody listens once closed

    async def main() -> LevelServerMetrics:
        async with ServerMetricsSampler(f"http://127.0.0.1:{port}/metrics", interval_s=0.02) as sampler:
            await asyncio.sleep(0.1)
        assert sampler.result is not None
        return sampler.result

    level = asyncio.run(main())
    assert level.unavailable == f"connection refused at 127.0.0.1:{port}"
    assert level.samples == 0 and level.polls_failed >= 3  # it kept trying: the server may come up


def test_a_page_without_gauges_and_passing_errors() -> None:
    answers = iter([web.Response(status=503, text="loading"), web.Response(text="<html>dashboard</html>")])

    async def flaky(request: web.Request) -> web.Response:
        return next(answers, web.Response(text=vllm_text(2, 0, 0.3, 0)))

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>dashboard</html>", content_type="text/html")

    async def main() -> tuple[LevelServerMetrics, LevelServerMetrics, str | None]:
        async with serving(flaky) as url:
            sampler = ServerMetricsSampler(url, interval_s=0.03)
            await sampler.start()
            await asyncio.sleep(0.2)
            recovered = await sampler.stop()
        async with serving(html) as url:
            sampler = ServerMetricsSampler(url, interval_s=0.03)
            await sampler.start()
            await asyncio.sleep(0.1)
            return recovered, await sampler.stop(), await probe(url)

    recovered, html_only, probed = asyncio.run(main())
    assert recovered.unavailable is None and recovered.polls_failed == 1 and recovered.running_max == 2.0
    assert recovered.samples >= 3
    assert html_only.unavailable == probed == NO_GAUGES and html_only.samples == 0


def test_a_slow_endpoint_neither_blocks_the_loop_nor_piles_up() -> None:
    in_flight = 0
    most_in_flight = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            await asyncio.sleep(1.0)
            return web.Response(text=vllm_text(1, 0, 0.2, 0))
        finally:
            in_flight -= 1

    async def main() -> tuple[LevelServerMetrics, float, float]:
        loop = asyncio.get_running_loop()
        async with serving(slow) as url:
            sampler = ServerMetricsSampler(url, interval_s=0.1, timeout_s=2.0)
            await sampler.start()  # the baseline poll: one slow answer
            gaps: list[float] = []
            last = loop.time()
            while len(gaps) < 150:  # a load generator's 10 ms tick, for 1.5 s
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now
            stop_started = loop.time()
            level = await sampler.stop()
            return level, max(gaps), loop.time() - stop_started

    level, worst_gap_s, stop_s = asyncio.run(main())
    assert worst_gap_s < 0.1, worst_gap_s  # a blocking poll would stall the tick for ~1 s
    assert most_in_flight == 1  # a tick never starts a poll while one is running
    assert level.ticks_skipped >= 8 and level.polls_failed == 0  # skipped, not queued behind the slow one
    assert level.samples >= 2 and level.running_max == 1.0
    assert stop_s < 1.5  # stop waits for the poll in flight, never longer than one answer


def test_a_hung_endpoint_times_out_with_the_limit_named() -> None:
    async def hung(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text=vllm_text(1, 0, 0.2, 0))

    async def main() -> LevelServerMetrics:
        async with serving(hung) as url:
            sampler = ServerMetricsSampler(url, interval_s=0.05, timeout_s=0.1)
            await sampler.start()
            await asyncio.sleep(0.2)
            return await sampler.stop()

    level = asyncio.run(main())
    assert level.unavailable == "/metrics did not answer within 0.1 s" and level.samples == 0


def test_the_sampler_is_used_once_and_in_order() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        ServerMetricsSampler("http://127.0.0.1:1/metrics", interval_s=0)

    async def main() -> None:
        sampler = ServerMetricsSampler("http://127.0.0.1:1/metrics")
        with pytest.raises(RuntimeError, match="before start"):
            await sampler.stop()
        await sampler.start()
        with pytest.raises(RuntimeError, match="already called"):
            await sampler.start()
        await sampler.stop()

    asyncio.run(main())


# --- the real vLLM (CPU build) ---------------------------------------------------------------------

@pytest.mark.vllm
def test_the_session_vllm_server_says_why_it_has_no_gauges(vllm_server) -> None:
    from tests.servers.vllm import SERVER_ARGS

    reason = asyncio.run(probe(metrics_url(vllm_server.base_url)))
    # the fixture starts vLLM with --disable-log-stats, which turns its Prometheus gauges off
    assert reason == (NO_GAUGES if "--disable-log-stats" in SERVER_ARGS else None)


@pytest.fixture(scope="module")
def vllm_with_stats(request, tmp_path_factory):
    """A vLLM serving its gauges: the session's ``vllm_server`` once it runs with stats on, until
    then a server of this module's own (the same arguments without ``--disable-log-stats``)."""
    import os

    from tests.servers.vllm import SERVER_ARGS, VLLM_VENV, VllmServer, vllm_installed

    if "--disable-log-stats" not in SERVER_ARGS:
        yield request.getfixturevalue("vllm_server")
        return
    if not vllm_installed():
        if os.environ.get("CI") or os.environ.get("QEVAL_REQUIRE_VLLM") == "1":
            pytest.fail(f"{VLLM_VENV} is missing: CI requires the real-server tests to run", pytrace=False)
        pytest.skip("vLLM venv not installed: run make test")

    from qeval.models import BUILTINS, materialise

    class VllmWithStats(VllmServer):
        def _argv(self, port: int) -> list[str]:
            return [a for a in super()._argv(port) if a != "--disable-log-stats"]

    server = VllmWithStats(materialise(BUILTINS["smollm2-135m"]),
                           log_path=tmp_path_factory.mktemp("vllm-stats") / "server.log")
    with server:
        yield server
    assert server.pgid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(server.pgid, 0)  # nothing of its process group is left


@pytest.mark.vllm
@pytest.mark.slow
def test_the_sampler_sees_vllm_running_requests(vllm_with_stats) -> None:
    import aiohttp

    from tests.servers.vllm import SERVED_MODEL_NAME

    base_url = vllm_with_stats.base_url

    async def complete(session: aiohttp.ClientSession) -> int:
        body = {"model": SERVED_MODEL_NAME, "prompt": "Once upon a time", "max_tokens": 32,
                "temperature": 0, "ignore_eos": True}
        async with session.post(f"{base_url}/completions", json=body) as response:
            await response.read()
            return response.status

    async def main() -> tuple[LevelServerMetrics, list[int]]:
        async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=300)) as session:
            sampler = ServerMetricsSampler(metrics_url(base_url), interval_s=0.2)
            await sampler.start()
            statuses = await asyncio.gather(*(complete(session) for _ in range(4)))
            return await sampler.stop(), list(statuses)

    level, statuses = asyncio.run(main())
    assert statuses == [200] * 4
    assert level.engine == "vllm" and level.unavailable is None and level.samples >= 3, level
    assert level.running_max is not None and level.running_max >= 1, level
    assert level.kv_cache_usage_max is not None and 0 < level.kv_cache_usage_max <= 1
    assert level.waiting_max is not None and level.preemptions == 0  # 4 short requests fit the cache
