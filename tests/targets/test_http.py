"""EndpointClient against a real (scripted) server: timings, retries, faults, identity, keys."""

from __future__ import annotations

import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from qeval.targets._http import (
    AttemptRecord,
    EndpointClient,
    EndpointError,
    EndpointRequest,
    EndpointSettings,
)
from qeval.targets._retry import RetryPolicy
from tests.targets.scripted_server import ScriptedServer

MODEL = "scripted-model"
CHAT = EndpointRequest(messages=(("user", "one two three four"),), prompt=None, max_tokens=16)
WORDS = ["echo:", "one", "two", "three", "four"]  # what the scripted server answers to CHAT
ONCE = RetryPolicy(max_attempts=1)
KEY = "sk-planted-0123456789abcdef"


def _client(server: ScriptedServer, sleeps: list[float] | None = None, **settings: Any) -> EndpointClient:
    settings.setdefault("model", MODEL)
    record = sleeps if sleeps is not None else []
    return EndpointClient(EndpointSettings(server.base_url, **settings), sleep=record.append, rng=random.Random(0))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ttft_is_the_first_content_chunk_not_the_role_or_empty_ones() -> None:
    with ScriptedServer(faults=["role_first"], first_content_delay_s=0.2, chunk_delay_s=0.02) as server:
        with _client(server) as client:
            response = client.complete(CHAT)
    assert response.error_kind is None and response.text == " ".join(WORDS)
    assert len(response.content_times_ms) == len(WORDS)  # one per word; role/empty chunks not counted
    assert response.content_times_ms[0] >= 200.0  # the role chunk came at ~1 ms
    # word i is written no sooner than 200 + 20 i ms after the request; (gaps between reads
    # can be shorter than 20 ms when one read is late, so the bound is on the times)
    assert all(t >= 200.0 + 20.0 * i for i, t in enumerate(response.content_times_ms))
    assert list(response.content_times_ms) == sorted(response.content_times_ms)


def test_trailing_usage_chunk_does_not_extend_e2e() -> None:
    with ScriptedServer(tail_delay_s=0.3) as server, _client(server) as client:
        start = time.perf_counter()
        response = client.complete(CHAT)
        wall_ms = (time.perf_counter() - start) * 1000.0
    assert response.e2e_ms == response.content_times_ms[-1]
    assert response.e2e_ms <= wall_ms - 250.0  # the server slept 300 ms after the last word
    assert (response.output_tokens, response.token_source) == (len(WORDS), "usage")
    assert response.finish_reason == "stop" and response.served_model == MODEL
    assert response.system_fingerprint == "fp-scripted"


def test_client_overhead_is_measured_and_smaller_than_e2e() -> None:
    with ScriptedServer(chunk_delay_s=0.01) as server, _client(server) as client:
        response = client.complete(CHAT)
    assert 0.0 < response.client_overhead_ms < response.e2e_ms


def test_sequential_requests_reuse_one_connection() -> None:
    with ScriptedServer() as server, _client(server) as client:
        kinds = [client.complete(CHAT, stream=stream).error_kind for stream in (True, True, False, True)]
        ports = {r.client_port for r in server.requests}
    assert kinds == [None] * 4 and len(ports) == 1  # no new connect inside the next request's TTFT


def test_429_then_success_honours_retry_after() -> None:
    sleeps: list[float] = []
    with ScriptedServer(faults=["429"]) as server, _client(server, sleeps) as client:
        response = client.complete(CHAT)
    assert response.error_kind is None and response.text == " ".join(WORDS)
    assert response.attempts == (AttemptRecord(429, "http_429", 0.0), AttemptRecord(200, None, 0.0))
    assert sleeps == [0.0]  # Retry-After: 0, not a jittered draw


def test_persistent_500_gives_up_after_max_attempts() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=3, base_s=0.01, max_wait_s=0.05)
    with ScriptedServer(faults=["500"] * 5) as server, _client(server, sleeps, retry=policy) as client:
        response = client.complete(CHAT)
        assert len(server.requests) == 3
    assert response.error_kind == "http_500" and response.text == ""
    assert [a.status for a in response.attempts] == [500, 500, 500]
    assert [a.wait_before_s for a in response.attempts[1:]] == sleeps and all(s <= 0.05 for s in sleeps)
    assert response.error is not None and server.base_url in response.error and "3 attempts" in response.error


def test_400_is_not_retried() -> None:
    with ScriptedServer(faults=["400"]) as server, _client(server) as client:
        response = client.complete(CHAT)
    assert response.error_kind == "http_400" and len(response.attempts) == 1


def test_stall_times_out_after_the_read_timeout() -> None:
    with ScriptedServer(faults=["stall"], stall_s=10) as server:
        with _client(server, read_timeout_s=0.5, retry=ONCE) as client:
            start = time.perf_counter()
            response = client.complete(CHAT)
            took_s = time.perf_counter() - start
    assert response.error_kind == "timeout" and response.attempts[0].status == 200
    # cut at the read timeout, long before the 10 s stall ends (the upper bound only proves that:
    # a loaded machine may take seconds more, never the stall)
    assert 0.5 <= took_s < 8.0 and response.e2e_ms >= 500.0


def test_stall_then_success_on_retry() -> None:
    with ScriptedServer(faults=["stall"], stall_s=10) as server:
        with _client(server, read_timeout_s=0.5) as client:
            response = client.complete(CHAT)
    assert response.error_kind is None and [a.error_kind for a in response.attempts] == ["timeout", None]
    assert response.content_times_ms[0] < 500.0  # times come from the successful attempt


@pytest.mark.parametrize(("fault", "kind"), [("truncate", "truncated"), ("done_early", "truncated"),
                                            ("drop", "connection")])
def test_broken_stream_or_connection(fault: str, kind: str) -> None:
    with ScriptedServer(faults=[fault]) as server, _client(server, retry=ONCE) as client:
        response = client.complete(CHAT)
    assert response.error_kind == kind and response.error is not None and "/chat/completions" in response.error
    assert response.attempts[0].status == (None if fault == "drop" else 200)
    if fault != "drop":
        assert response.text == "echo: one"  # what arrived before the cut is kept for the report


@pytest.mark.parametrize("fault", ["truncate", "drop"])
def test_broken_attempt_is_retried_to_success(fault: str) -> None:
    with ScriptedServer(faults=[fault]) as server, _client(server) as client:
        response = client.complete(CHAT)
    assert response.error_kind is None and response.text == " ".join(WORDS) and len(response.attempts) == 2


@pytest.mark.parametrize(("fault", "message"), [("error_event", "scripted mid-stream failure"), ("bad_json", "JSON")])
def test_bad_stream_content_is_bad_response(fault: str, message: str) -> None:
    with ScriptedServer(faults=[fault]) as server, _client(server) as client:
        response = client.complete(CHAT)
    assert response.error_kind == "bad_response" and len(response.attempts) == 1
    assert response.error is not None and message in response.error


def test_token_source_usage_then_tokenizer_then_chunks() -> None:
    with ScriptedServer(faults=["no_usage", "no_usage"]) as server:
        settings = EndpointSettings(server.base_url, model=MODEL)
        with EndpointClient(settings, count_tokens=lambda text: len(text)) as client:
            by_tokenizer = client.complete(CHAT)
        with EndpointClient(settings) as client:
            by_chunks = client.complete(CHAT)
            by_usage = client.complete(CHAT)
    assert (by_usage.token_source, by_usage.output_tokens) == ("usage", len(WORDS))
    assert (by_tokenizer.token_source, by_tokenizer.output_tokens) == ("tokenizer", len(" ".join(WORDS)))
    assert (by_chunks.token_source, by_chunks.output_tokens) == ("chunks", len(WORDS))


def test_request_bodies_and_non_streaming() -> None:
    prompt = EndpointRequest(messages=None, prompt="a b c", max_tokens=2, stop=("\n",), seed=7)
    with ScriptedServer() as server, _client(server) as client:
        streamed = client.complete(CHAT)
        plain = client.complete(prompt, stream=False)
        chat_body, prompt_body = (r.body for r in server.requests)
        paths = [r.path for r in server.requests]
    assert paths == ["/v1/chat/completions", "/v1/completions"]
    assert chat_body == {
        "model": MODEL, "messages": [{"role": "user", "content": "one two three four"}], "max_tokens": 16,
        "temperature": 0, "seed": 0, "stream": True, "stream_options": {"include_usage": True},
    }
    assert prompt_body == {"model": MODEL, "prompt": "a b c", "max_tokens": 2, "temperature": 0,
                           "stop": ["\n"], "seed": 7, "stream": False}
    assert streamed.error_kind is None
    assert (plain.text, plain.finish_reason, plain.output_tokens) == ("echo: a", "length", 2)
    assert plain.content_times_ms == () and plain.e2e_ms > 0 and plain.token_source == "usage"


def test_concurrent_threads_share_one_client() -> None:
    requests = [EndpointRequest(messages=(("user", f"n{i}"),), prompt=None, max_tokens=8) for i in range(16)]
    with ScriptedServer(chunk_delay_s=0.02) as server, _client(server, concurrency=2) as client:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(client.complete, requests))
        wall_ms = (time.perf_counter() - start) * 1000.0
    assert [r.text for r in responses] == [f"echo: n{i}" for i in range(16)]
    # 16 threads, 2 slots, >= 20 ms a request: the last to get a slot waited ~7 rounds (a bound from
    # sleeps, with slack for where the clocks are read: 138 ms was seen)
    last = max(responses, key=lambda r: r.queue_wait_ms)
    assert last.queue_wait_ms >= 120.0
    # the wait is kept out of the request's clock: with it, the last request's e2e would be ~7/8 of the wall
    assert max(r.e2e_ms for r in responses) < wall_ms / 2


def test_model_is_discovered_when_not_named() -> None:
    with ScriptedServer(version={"version": "0.0.1"}, props={"chat_template": "x" * 5000, "n": 1}) as server:
        with _client(server, model=None) as client:
            response = client.complete(CHAT)
            identity = client.identify()
    assert response.error_kind is None and server.requests[0].path == "/v1/models"
    assert (identity.model, identity.models_listed, identity.max_model_len) == (MODEL, (MODEL,), 2048)
    assert identity.server_header == "scripted-server/1.0" and identity.version == {"version": "0.0.1"}
    assert identity.props == {"chat_template": "x" * 2048, "n": 1}


def test_nothing_listening_fails_fast_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = EndpointClient(EndpointSettings(url, connect_timeout_s=1.0))
    start = time.perf_counter()
    with pytest.raises(EndpointError) as caught:
        client.identify()
    assert time.perf_counter() - start < 10.0  # refused at once; the bound only proves there is no hang
    message = str(caught.value)
    assert f"GET {url}/models: connection refused" in message and "running" in message
    # complete() never raises: it reports the same fault
    assert client.complete(CHAT).error_kind == "connection"


def test_several_models_or_an_unlisted_one_is_an_error_naming_the_choices() -> None:
    with ScriptedServer(models=["alpha-7b", "beta-13b"]) as server:
        for model in (None, "gamma"):
            with pytest.raises(EndpointError, match="alpha-7b, beta-13b"):
                _client(server, model=model).identify()


def test_wrong_base_url_says_where_the_api_root_is() -> None:
    with ScriptedServer() as server:
        root = server.base_url.removesuffix("/v1")
        with pytest.raises(EndpointError, match="/v1"):
            EndpointClient(EndpointSettings(root)).identify()


def test_api_key_is_sent_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QEVAL_TEST_KEY", KEY)
    with ScriptedServer(faults=["ok", "401"], models_faults=["401"]) as server:
        settings = EndpointSettings(server.base_url, model=MODEL, api_key_env="QEVAL_TEST_KEY")
        with EndpointClient(settings) as client:
            ok = client.complete(CHAT)
            refused = client.complete(CHAT)
            with pytest.raises(EndpointError) as caught:
                client.identify()
            shown = [repr(client), repr(settings), repr(ok), repr(refused), str(refused.error)]
    assert ok.error_kind is None
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert refused.error_kind == "http_401" and len(refused.attempts) == 1  # not retried
    error = caught.value
    shown += [str(error), repr(error), repr(error.args)]
    assert "QEVAL_TEST_KEY" in str(error) and "QEVAL_TEST_KEY" in str(refused.error)
    assert error.__cause__ is None and error.__context__ is None  # no httpx request (headers) rides along
    assert all(KEY not in text for text in shown), [t for t in shown if KEY in t]


def test_missing_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QEVAL_NO_SUCH_KEY", raising=False)
    with pytest.raises(EndpointError, match="QEVAL_NO_SUCH_KEY"):
        EndpointClient(EndpointSettings("http://127.0.0.1:1/v1", api_key_env="QEVAL_NO_SUCH_KEY"))
