"""The in-process slot server: requests arriving while others decode get what batch-1
``model.generate`` gives, wait for a slot only when every slot is taken, and never hang."""

from __future__ import annotations

import asyncio
import queue
import threading
import time

import pytest

from qeval.generation import GenerationSettings
from qeval.load._inprocess import CLOSED, ServedRequest, SlotServer, serve
from qeval.models import FakeTextModel, HFTextModel
from tests.test_engine import _CharTokenizer, _prompts, _raw, _text

torch = pytest.importorskip("torch")

RESULT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def hf(tiny_llama_builder):
    """The tiny Llama behind HFTextModel, one character per token (text equality = id equality)."""
    return HFTextModel(tiny_llama_builder(), _CharTokenizer(), "cpu")


def _texts(n: int, seed: int) -> list[str]:
    return [_text(p[1:]) for p in _prompts(n, seed=seed)]


def _reference(hf, text: str, max_new_tokens: int, stop: tuple[str, ...] = ()):
    """Batch-1 ``model.generate`` (the standard tests/test_engine.py holds the engine to)."""
    return hf._generate_static([text], GenerationSettings(max_new_tokens=max_new_tokens, stop=stop, batch_size=1))[0]


class _Results:
    """Collects ``on_done`` results by request index; ``wait`` fails rather than hangs."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[int, ServedRequest, str]] = queue.Queue()
        self.submitted_s: dict[int, float] = {}

    def submit(self, server: SlotServer, index: int, text: str, max_new_tokens: int) -> None:
        self.submitted_s[index] = time.perf_counter()
        server.submit(_raw(text), max_new_tokens,
                      lambda r: self._queue.put((index, r, threading.current_thread().name)))

    def next(self, timeout_s: float = RESULT_TIMEOUT_S) -> tuple[int, ServedRequest, str]:
        """The next result to arrive: (request index, result, name of the thread that delivered it)."""
        return self._queue.get(timeout=timeout_s)

    def wait(self, n: int) -> dict[int, ServedRequest]:
        return {index: result for index, result, _ in (self.next() for _ in range(n))}


class _ForwardCalls:
    """A forward pre-hook: runs ``actions[n]`` (on the worker thread) when forward call ``n`` starts."""

    def __init__(self, model, actions) -> None:
        self.calls = 0
        self._actions = actions
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.calls += 1
        action = self._actions.get(self.calls)
        if action is not None:
            action()

    def remove(self) -> None:
        self._handle.remove()


def _assert_well_timed(result: ServedRequest) -> None:
    assert result.ok, result.error
    times = result.token_times_ms
    assert len(times) == result.output_tokens
    assert all(a < b for a, b in zip(times, times[1:])), times
    assert times[0] > result.queued_ms >= 0
    assert result.e2e_ms >= times[-1]


@pytest.mark.parametrize("slots", [2, 4])
def test_requests_arriving_while_others_decode_match_batch_one_generate(hf, slots):
    texts = _texts(6, seed=20 + slots)
    probe = [_reference(hf, t, 8) for t in texts[:3]]
    stop = (probe[0].text[3:5], probe[1].text[4:5])  # stop strings the model does produce
    limits = [8, 5, 9, 3, 7, 6]
    results = _Results()
    with SlotServer(hf, slots, stop=stop) as server:
        # the later requests are submitted from inside forward passes: they arrive mid-decode
        arrive = {3: lambda: results.submit(server, 2, texts[2], limits[2]),
                  5: lambda: results.submit(server, 3, texts[3], limits[3]),
                  8: lambda: [results.submit(server, i, texts[i], limits[i]) for i in (4, 5)]}
        calls = _ForwardCalls(hf.model, arrive)
        try:
            results.submit(server, 0, texts[0], limits[0])
            results.submit(server, 1, texts[1], limits[1])
            got = results.wait(6)
        finally:
            calls.remove()
        assert server.slots_effective == slots and server.fallback_reason is None
    for i, text in enumerate(texts):
        want = _reference(hf, text, limits[i], stop)
        assert (got[i].text, got[i].output_tokens) == (want.text, want.output_tokens), f"request {i}"
        _assert_well_timed(got[i])
    assert any(r.output_tokens < limits[i] for i, r in got.items())  # stop strings ended rows
    assert any(r.output_tokens == limits[i] for i, r in got.items())


def test_a_request_waits_for_a_slot_only_when_every_slot_is_taken(hf):
    texts = _texts(3, seed=3)
    for slots in (2, 4):
        results = _Results()
        with SlotServer(hf, slots) as server:
            for i, text in enumerate(texts):
                results.submit(server, i, text, 16)
            got = results.wait(3)
        first_end_s = min(results.submitted_s[i] + got[i].e2e_ms / 1000 for i in (0, 1))
        third = got[2]
        admitted_s = results.submitted_s[2] + third.queued_ms / 1000
        first_token_s = results.submitted_s[2] + third.ttft_ms / 1000
        if slots == 2:
            # a whole step (> 100 us here) separates a row's end from the next prefill
            assert admitted_s >= first_end_s - 1e-4, "the third request entered a slot before one was free"
            assert first_token_s > first_end_s
            assert third.queued_ms > max(got[i].queued_ms for i in (0, 1))
        else:
            ends_s = [results.submitted_s[i] + got[i].e2e_ms / 1000 for i in range(3)]
            assert all(results.submitted_s[i] + got[i].ttft_ms / 1000 < min(ends_s) for i in range(3)), "one waited"
        for r in got.values():
            _assert_well_timed(r)


def test_each_request_gets_its_own_max_new_tokens(hf):
    texts = _texts(4, seed=8)
    limits = [1, 4, 2, 6]
    results = _Results()
    with SlotServer(hf, 4) as server:
        for i, text in enumerate(texts):
            results.submit(server, i, text, limits[i])
        results.submit(server, 4, texts[0], 0)
        got = results.wait(5)
    for i, text in enumerate(texts):
        want = _reference(hf, text, limits[i])
        assert (got[i].text, got[i].output_tokens) == (want.text, want.output_tokens)
        _assert_well_timed(got[i])
    assert [got[i].output_tokens for i in range(4)] == limits  # this model emits no EOS or pad here
    assert got[4].ok and got[4].output_tokens == 0 and got[4].token_times_ms == ()


def test_a_failing_forward_fails_the_rows_in_flight_and_the_server_serves_on(hf):
    texts = _texts(4, seed=9)
    results = _Results()

    def boom():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with SlotServer(hf, 2) as server:
        calls = _ForwardCalls(hf.model, {3: boom})
        try:
            for i in range(3):  # two in slots, the third waiting when step 3 fails
                results.submit(server, i, texts[i], 12)
            failed = results.wait(3)
        finally:
            calls.remove()
        results.submit(server, 3, texts[3], 5)
        after = results.wait(1)[3]
    for i in (0, 1):
        assert failed[i].error_kind == "error: RuntimeError"
        assert "illegal memory access" in failed[i].error and failed[i].output_tokens == 0
    want = _reference(hf, texts[2], 12)
    assert (failed[2].text, failed[2].output_tokens) == (want.text, want.output_tokens)  # it was only waiting
    want = _reference(hf, texts[3], 5)
    assert (after.text, after.output_tokens) == (want.text, want.output_tokens)


def test_close_fails_the_requests_not_ended_and_stops_the_worker(hf):
    texts = _texts(3, seed=10)
    results = _Results()
    started = threading.Event()

    def slow_first_step():
        started.set()
        time.sleep(0.05)  # close() is called while this step runs

    server = SlotServer(hf, 1)
    calls = _ForwardCalls(hf.model, {1: slow_first_step})
    try:
        for i, text in enumerate(texts):
            results.submit(server, i, text, 16)
        assert started.wait(RESULT_TIMEOUT_S)
        server.close()
        assert not server.alive
        got = results.wait(3)
    finally:
        calls.remove()
    assert [got[i].error_kind for i in range(3)] == [CLOSED] * 3
    assert got[2].queued_ms == pytest.approx(got[2].e2e_ms)  # it never left the queue
    results.submit(server, 3, texts[0], 4)  # after close: answered at once, on the caller's thread
    index, late, thread = results.next(timeout_s=1)
    assert (index, late.error_kind, thread) == (3, CLOSED, threading.current_thread().name)


def test_a_model_the_engine_cannot_drive_is_served_one_request_at_a_time():
    delay_s = 0.01
    model = FakeTextModel(lambda prompt, precision: "one two three four five", "fp32", delay_s, 0)
    results = _Results()
    with SlotServer(model, 4) as server:
        assert server.slots_effective == 1 and "FakeTextModel" in server.fallback_reason
        for i in range(3):
            results.submit(server, i, f"question {i}", 4)
        got = results.wait(3)
    first, second, third = got[0], got[1], got[2]
    for r in got.values():
        assert (r.text, r.output_tokens) == ("one two three four", 4)
        _assert_well_timed(r)
    # serialised: each waits for the one before it to end
    assert first.queued_ms < delay_s * 1000
    assert first.e2e_ms * 0.9 <= second.queued_ms <= first.e2e_ms + 20
    assert third.queued_ms >= first.e2e_ms + (second.e2e_ms - second.queued_ms) * 0.9
    assert second.ttft_ms >= second.queued_ms + delay_s * 1000 * 0.9


def test_an_hf_model_with_a_logits_processor_falls_back_like_generate_does(tiny_llama_builder):
    model = tiny_llama_builder()
    model.generation_config.repetition_penalty = 1.3
    hf = HFTextModel(model, _CharTokenizer(), "cpu")
    text = _texts(1, seed=12)[0]
    results = _Results()
    with SlotServer(hf, 3) as server:
        assert server.slots_effective == 1 and "repetition_penalty" in server.fallback_reason
        results.submit(server, 0, text, 5)
        got = results.wait(1)[0]
    want = hf.generate_timed(_raw(text), GenerationSettings(max_new_tokens=5))
    assert (got.text, got.output_tokens) == (want.text, want.output_tokens)
    _assert_well_timed(got)


def test_a_cache_the_engine_refuses_at_its_first_prefill_moves_every_request_to_the_fallback(hf, monkeypatch):
    from qeval.models._engine import EngineUnsupported

    def quantized_cache(cache):
        raise EngineUnsupported("cache layer QuantizedLayer is not a plain DynamicLayer")

    monkeypatch.setattr("qeval.models._engine._check_layers", quantized_cache)
    texts = _texts(3, seed=13)
    results = _Results()
    with SlotServer(hf, 2) as server:
        assert server.slots_effective == 2
        for i, text in enumerate(texts):
            results.submit(server, i, text, 4)
        got = results.wait(3)
        assert server.slots_effective == 1 and "QuantizedLayer" in server.fallback_reason
    for i, text in enumerate(texts):
        want = _reference(hf, text, 4)
        assert (got[i].text, got[i].output_tokens) == (want.text, want.output_tokens)
        _assert_well_timed(got[i])


def test_the_asyncio_adapter_awaits_results_from_a_running_loop(hf):
    texts = _texts(3, seed=14)

    async def main(server):
        return await asyncio.wait_for(asyncio.gather(*(serve(server, _raw(t), 5) for t in texts)),
                                      RESULT_TIMEOUT_S)

    with SlotServer(hf, 2) as server:
        got = asyncio.run(main(server))
    for text, r in zip(texts, got, strict=True):
        want = _reference(hf, text, 5)
        assert (r.text, r.output_tokens) == (want.text, want.output_tokens)
        _assert_well_timed(r)
