"""The load generator against real sockets: a loopback streaming server in its own process."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from qeval.load._client import LoadClient
from qeval.load._driver import LevelRun, Prepared, run_level
from qeval.load._types import ArrivalSpec, LoadLevel, Reply
from qeval.models._base import Message, Prompt
from qeval.targets._http import EndpointRequest, EndpointSettings
from tests.load.loopback import MODEL, Loopback

PROMPT = Prompt((Message("user", "hi"),), chat=False, text="hi")


class RawSender:
    """Completions of the prompt text, straight through a LoadClient."""

    def __init__(self, client: LoadClient) -> None:
        self.client = client

    async def send(self, prompt: Prompt, max_tokens: int) -> Reply:
        return await self.client.send(EndpointRequest(messages=None, prompt=prompt.text, max_tokens=max_tokens))


def drive(base_url: str, level: LoadLevel, *, connections: int = 64, **kwargs) -> LevelRun:
    async def main() -> LevelRun:
        settings = EndpointSettings(base_url, model=MODEL)
        async with LoadClient(settings, MODEL, max_connections=connections) as client:
            return await run_level(RawSender(client), [Prepared(PROMPT, 4)], level, **kwargs)

    return asyncio.run(main())


def ttfts(run: LevelRun) -> list[float]:
    return [s.ttft_ms for s in run.measured if s.ttft_ms is not None]


def test_a_serialising_server_queues_concurrent_users_and_the_generator_sees_it():
    with Loopback(tokens=4, first_token_s=0.04, token_gap_s=0.005, serial=True) as server:
        one = drive(server.base_url, LoadLevel("concurrency", 1), count=8, warmup=1)
        four = drive(server.base_url, LoadLevel("concurrency", 4), count=16, warmup=4)
    assert all(s.ok for s in one.samples + four.samples)
    ratio = statistics.median(ttfts(four)) / statistics.median(ttfts(one))
    assert ratio >= 3.0, f"TTFT at c=4 / c=1 = {ratio:.2f}: queueing behind 3 others must show"
    assert all(s.cap_wait_ms == 0 for s in four.samples)  # closed loop: nothing waits on a client cap


def test_a_parallel_server_at_the_same_concurrency_does_not_queue():
    with Loopback(tokens=4, first_token_s=0.04, token_gap_s=0.005, serial=False) as server:
        one = drive(server.base_url, LoadLevel("concurrency", 1), count=8, warmup=1)
        four = drive(server.base_url, LoadLevel("concurrency", 4), count=16, warmup=4)
    ratio = statistics.median(ttfts(four)) / statistics.median(ttfts(one))
    assert ratio < 1.8, f"TTFT at c=4 / c=1 = {ratio:.2f} on a server that does not queue"
    # throughput rises with concurrency when the server runs requests side by side
    rps = lambda run: len(run.measured) / run.wall_s  # noqa: E731
    assert rps(four) > 2.5 * rps(one)


def test_the_client_cap_holds_requests_back_outside_their_latency():
    with Loopback(tokens=2, first_token_s=0.05) as server:
        run = drive(server.base_url, LoadLevel("rate", float("inf"), ArrivalSpec(), max_concurrency=2),
                    count=8, warmup=0, offsets_s=[0.0] * 8)
    waits = sorted(s.cap_wait_ms for s in run.measured)
    assert waits[:2] == pytest.approx([0, 0], abs=5)  # the first two go at once
    assert waits[-1] > 100  # the last waits for three rounds of two
    assert max(ttfts(run)) < 100  # a held-back request's TTFT starts when it is sent


def test_warm_up_requests_are_sent_under_the_same_shape_but_not_measured():
    with Loopback(tokens=2) as server:
        run = drive(server.base_url, LoadLevel("concurrency", 3), count=10, warmup=3)
    assert sum(s.warmup for s in run.samples) == 3
    assert len(run.measured) == 10
    assert sorted(s.index for s in run.measured) == list(range(3, 13))


def test_a_duration_bound_stops_sending_after_it_and_waits_for_requests_in_flight():
    with Loopback(tokens=2, first_token_s=0.02) as server:
        run = drive(server.base_url, LoadLevel("concurrency", 2), duration_s=0.5, count=None, warmup=0)
    start = min(s.sent_s for s in run.measured)
    assert max(s.sent_s for s in run.measured) - start < 0.5
    assert 10 <= len(run.measured) <= 60  # about 2 users x 0.5 s / ~25 ms each
    assert all(s.ok for s in run.measured)  # the ones in flight at the end finished


def test_trace_replay_sends_each_request_at_its_recorded_offset():
    offsets = [0.0, 0.01, 0.05, 0.051, 0.2, 0.35, 0.36, 0.5, 0.52, 0.6]
    with Loopback(tokens=2) as server:
        run = drive(server.base_url, LoadLevel("replay", 1.0, max_concurrency=None), count=len(offsets),
                    warmup=0, offsets_s=offsets)
    late_ms = {s.index: (s.sent_s - offsets[s.index]) * 1000.0 for s in run.measured}
    assert sorted(late_ms) == list(range(len(offsets)))
    # never early; late by the event loop's timer resolution (~1 ms), a few ms on a busy machine
    assert all(-0.5 <= x <= 15.0 for x in late_ms.values()), late_ms
    assert statistics.median(late_ms.values()) <= 3.0, late_ms


def test_a_server_that_is_gone_gives_counted_errors_not_a_crash():
    with Loopback() as server:
        url = server.base_url
    run = drive(url, LoadLevel("concurrency", 2), count=4, warmup=0)
    assert len(run.measured) == 4
    assert {s.error_kind for s in run.measured} == {"connection"}
    assert all(s.ttft_ms is None for s in run.measured)


def test_the_loop_lag_monitor_samples_throughout_the_level():
    with Loopback(tokens=2, first_token_s=0.05) as server:
        run = drive(server.base_url, LoadLevel("concurrency", 1), count=4, warmup=0)
    assert len(run.loop_lag_ms) >= 10  # ~200 ms of 5 ms ticks
    assert all(x >= 0 for x in run.loop_lag_ms)
