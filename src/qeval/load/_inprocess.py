"""An in-process model served like a server, so the load generator measures it as it measures
an endpoint: requests submitted at any time wait in a queue and enter free slots of the
slot-refilling engine (:class:`qeval.models._engine.GreedyEngine`, continuous batching) on one
worker thread.

Times are ms from each request's :meth:`SlotServer.submit`, so TTFT includes the time the
request waited for a slot and its tokenization, as a server's TTFT includes its queue and its
tokenizer (``queued_ms`` and ``tokenize_ms`` say how much of it that was). A token's time is when
its step's ids reached the host (the engine's ``.tolist()``, which waits for the device); every
row of a step shares that time. Tokens are counted and decoded as ``HFTextModel.generate``
counts them, and EOS, padding and stop strings end a row as they end it there.

A model the engine cannot drive (not an :class:`~qeval.models.HFTextModel`, a KV cache that is
not a plain dynamic one, a generation config with logits processors) is served honestly one
request at a time through its own ``generate_timed``: ``slots_effective`` is then 1 and
``fallback_reason`` says why.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qeval.generation import GenerationSettings
from qeval.models._base import Prompt
from qeval.models._hf import _first_line

CLOSED = "closed"
"""``error_kind`` of a request the server was closed before it ended (or after)."""


@dataclass(frozen=True)
class ServedRequest:
    """One request as the in-process server served it. Times in ms from its submission."""

    text: str
    output_tokens: int
    """Generated ids up to and including the first EOS (padding excluded), as ``generate`` counts."""
    token_times_ms: tuple[float, ...]
    """When each counted token reached the host (first = TTFT, queue and tokenization included)."""
    e2e_ms: float
    """Submission to the end of the request (its last token, or its failure)."""
    queued_ms: float
    """Submission to the start of its prefill (time spent waiting for a free slot)."""
    tokenize_ms: float = 0.0
    """Of ``queued_ms`` (engine) or of the time before the first token (fallback): tokenizing."""
    error_kind: str | None = None
    """``error: <ExceptionType>`` when the model failed it, ``closed`` when the server stopped first."""
    error: str | None = None
    """One line saying what failed."""

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def ttft_ms(self) -> float | None:
        return self.token_times_ms[0] if self.token_times_ms else None


OnDone = Callable[[ServedRequest], object]
"""Called once with the result; whatever it returns is ignored."""


@dataclass
class _Request:
    """A request while the worker holds it (mutable: only the worker thread writes it)."""

    key: int
    prompt: Prompt
    max_new_tokens: int
    on_done: OnDone
    submitted: float
    admitted: float | None = None
    tokenize_ms: float = 0.0
    times: list[float] = field(default_factory=list)

    def ms(self, t: float) -> float:
        return (t - self.submitted) * 1000.0


def engine_refusal(model: Any) -> str | None:
    """Why the engine cannot serve ``model`` (None: it can), decided as ``HFTextModel`` decides
    between its engine and ``model.generate``; a cache the engine refuses is found at the first
    prefill instead."""
    from qeval.models._engine import EngineUnsupported, check_generation_config
    from qeval.models._hf import HFTextModel

    if not isinstance(model, HFTextModel):
        return f"{type(model).__name__} is not an in-process HF model: the slot engine cannot drive it"
    known = getattr(model, "_engine_unsupported", None)
    if known is not None:
        return str(known)
    try:
        check_generation_config(model.model.generation_config)
    except EngineUnsupported as exc:
        return f"EngineUnsupported: {exc}"
    return None


class SlotServer:
    """Serves one loaded in-process model: submitted requests wait in a queue and enter free slots
    of the engine (continuous batching) on a worker thread.

    ``stop``: stop strings that end every request's row (as a suite's ``stop`` does). A waiting
    request enters the first free slot at the next step (no waiting for a quarter of the slots to
    free up, as the accuracy pass does). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, model: Any, slots: int, *, stop: Sequence[str] = ()) -> None:
        self.model = model
        self.slots = max(1, slots)
        self._stop = tuple(stop)
        self._engine: Any = None
        self.fallback_reason = engine_refusal(model)
        if self.fallback_reason is None:
            from qeval.models._engine import GreedyEngine

            restore = getattr(model, "_restore_linears", None)
            if restore is not None:  # latency under load is the plain forward's, as for timed requests
                restore()
            self._engine = GreedyEngine(model.model, slots=self.slots, refill_min=1,
                                        **model._engine_options(self._stop))
        self._steps_ok = 0
        self._keys = itertools.count()
        self._cond = threading.Condition()
        self._incoming: deque[_Request] = deque()  # submitted, not yet seen by the worker
        self._live: dict[int, _Request] = {}  # in the engine: waiting there or in a slot
        self._pending: deque[_Request] = deque()  # fallback: waiting for the one slot
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="qeval-slot-server", daemon=True)
        self._thread.start()

    @property
    def slots_effective(self) -> int:
        """Requests decoded together: ``slots``, or 1 on the serialising fallback."""
        return 1 if self.fallback_reason is not None else self.slots

    @property
    def alive(self) -> bool:
        """Whether the worker thread still runs."""
        return self._thread.is_alive()

    def submit(self, prompt: Prompt, max_new_tokens: int, on_done: OnDone) -> None:
        """Thread-safe, returns at once. ``on_done`` is called on the worker thread when the
        request ends (on the caller's thread, with ``error_kind="closed"``, once closed)."""
        request = _Request(-1, prompt, max_new_tokens, on_done, time.perf_counter())
        with self._cond:
            if not self._closed:
                request.key = next(self._keys)
                self._incoming.append(request)
                self._cond.notify()
                return
        self._fail(request, CLOSED, "the server is closed")

    def close(self) -> None:
        """Stop the worker after the step in progress; requests not yet ended fail as ``closed``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:  # an on_done callback may close it
            self._thread.join()

    def __enter__(self) -> SlotServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker thread -------------------------------------------------------------------

    def _run(self) -> None:
        crash: BaseException | None = None
        try:
            while self._serve_once():
                pass
        except BaseException as exc:  # a bug here must not leave a caller waiting forever
            crash = exc
            raise
        finally:
            with self._cond:
                self._closed = True
                left = [*self._incoming, *self._live.values(), *self._pending]
                self._incoming.clear()
            self._live.clear()
            self._pending.clear()
            kind, why = (CLOSED, "the server was closed before this request ended") if crash is None else (
                f"error: {type(crash).__name__}", f"the server's worker failed: {crash}")
            for request in sorted(left, key=lambda r: r.key):
                self._fail(request, kind, why)

    def _serve_once(self) -> bool:
        """Take what arrived and do one step of work; False once closed."""
        with self._cond:
            while not (self._closed or self._incoming or self._has_work()):
                self._cond.wait()
            if self._closed:
                return False
            arrived = list(self._incoming)
            self._incoming.clear()
        for request in arrived:
            if request.max_new_tokens <= 0:
                self._done(request, text="", token_ids=(), end=time.perf_counter())
            elif self._engine is not None:
                self._admit(request)
            else:
                self._pending.append(request)
        if self._engine is not None:
            if self._engine.busy:
                self._step()
        elif self._pending:
            self._serve_alone(self._pending.popleft())
        return True

    def _has_work(self) -> bool:
        return bool(self._pending) or (self._engine is not None and self._engine.busy)

    def _admit(self, request: _Request) -> None:
        t0 = time.perf_counter()
        try:
            ids = self.model.tokenizer(request.prompt.text, add_special_tokens=False).input_ids
            if not ids:
                raise ValueError("the prompt is empty: no token to prefill")
            self._engine.admit(request.key, ids, request.max_new_tokens)
        except Exception as exc:  # noqa: BLE001 -- this request fails, the server serves on
            self._fail(request, f"error: {type(exc).__name__}", _first_line(exc))
            return
        request.tokenize_ms = (time.perf_counter() - t0) * 1000.0
        self._live[request.key] = request

    def _step(self) -> None:
        from qeval.models._engine import EngineUnsupported

        started = time.perf_counter()
        try:
            step = self._engine.step()
        except Exception as exc:  # noqa: BLE001 -- the rows in flight fail, the server serves on
            lost = self._engine.abandon()
            # as HFTextModel.generate_stream: a cache or forward the engine cannot drive shows up
            # in its first passes; then every request is served by the fallback instead
            if isinstance(exc, EngineUnsupported) or (
                    self._steps_ok == 0 and isinstance(exc, (AttributeError, NotImplementedError))):
                self._to_fallback(f"{type(exc).__name__}: {exc}")
                return
            for key in lost:
                self._fail(self._live.pop(key), f"error: {type(exc).__name__}", _first_line(exc))
            return
        now = time.perf_counter()
        self._steps_ok += 1
        for key in step.admitted:
            self._live[key].admitted = started
        for key, _ in step.tokens:
            self._live[key].times.append(now)
        for key, ids in step.finished:
            self._done(self._live.pop(key), text=None, token_ids=ids, end=now)

    def _to_fallback(self, reason: str) -> None:
        self.fallback_reason = reason
        self._engine = None
        requeued = sorted(self._live.values(), key=lambda r: r.key)
        self._live.clear()
        for request in requeued:
            request.admitted, request.times = None, []
        self._pending.extendleft(reversed(requeued))

    def _serve_alone(self, request: _Request) -> None:
        """The fallback: one request through the model's own batch-1 ``generate_timed``."""
        request.admitted = time.perf_counter()
        settings = GenerationSettings(max_new_tokens=request.max_new_tokens, stop=self._stop, batch_size=1)
        try:
            gen = self.model.generate_timed(request.prompt, settings)
        except Exception as exc:  # noqa: BLE001 -- this request fails, the server serves on
            self._fail(request, f"error: {type(exc).__name__}", _first_line(exc))
            return
        end = time.perf_counter()
        # generate_timed's times start after its tokenization; ours start at submission
        offset_ms = request.ms(request.admitted) + gen.tokenize_ms
        self._finish(request, ServedRequest(
            text=gen.text, output_tokens=gen.output_tokens,
            token_times_ms=tuple(offset_ms + t for t in gen.token_times_ms), e2e_ms=request.ms(end),
            queued_ms=request.ms(request.admitted), tokenize_ms=gen.tokenize_ms, error_kind=gen.error_kind,
        ))

    def _done(self, request: _Request, *, text: str | None, token_ids: Sequence[int], end: float) -> None:
        """A request the engine ended (or one asking for no tokens): counted and decoded like
        ``HFTextModel.generate`` (the EOS counts, padding after a stop string does not)."""
        n = 0
        if text is None:
            import torch

            text, n = self.model._count_and_decode(torch.tensor(list(token_ids), dtype=torch.long))
        admitted = request.admitted if request.admitted is not None else end
        self._finish(request, ServedRequest(
            text=text, output_tokens=n, token_times_ms=tuple(request.ms(t) for t in request.times[:n]),
            e2e_ms=request.ms(end), queued_ms=request.ms(admitted), tokenize_ms=request.tokenize_ms,
        ))

    def _fail(self, request: _Request, kind: str, why: str) -> None:
        now = time.perf_counter()
        admitted = request.admitted if request.admitted is not None else now
        self._finish(request, ServedRequest(
            text="", output_tokens=0, token_times_ms=(), e2e_ms=request.ms(now), queued_ms=request.ms(admitted),
            tokenize_ms=request.tokenize_ms, error_kind=kind, error=why,
        ))

    @staticmethod
    def _finish(request: _Request, result: ServedRequest) -> None:
        try:
            request.on_done(result)
        except Exception as exc:  # noqa: BLE001 -- a caller's callback must not stop the server
            warnings.warn(f"qeval: a SlotServer on_done callback raised {type(exc).__name__}: {exc}",
                          RuntimeWarning, stacklevel=1)


async def serve(server: SlotServer, prompt: Prompt, max_new_tokens: int) -> ServedRequest:
    """Submit ``prompt`` to ``server`` and await its result from a running event loop.

    Cancelling the awaiting task does not stop the request: the server finishes it and the
    result is dropped."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[ServedRequest] = loop.create_future()

    def resolve(result: ServedRequest) -> None:
        if not future.done():
            future.set_result(result)

    server.submit(prompt, max_new_tokens, lambda result: loop.call_soon_threadsafe(resolve, result))
    return await future

