"""A synchronous client for OpenAI-compatible servers (vLLM, llama.cpp, SGLang, TGI).

Timing follows vLLM's ``benchmarks/lib/endpoint_request_func.py`` and guidellm's
OpenAI backend: each raw chunk is stamped with ``perf_counter`` as soon as the socket
read returns, only chunks carrying generated text count (a role-only first chunk
would make TTFT read ~1 ms), and the trailing usage chunk does not extend e2e.
Thread-safe: one client serves a pool of ``concurrency`` threads; a semaphore of that
size keeps a request from starting its clock while it waits for a connection.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from qeval.errors import QevalError, UsageError
from qeval.applied import EndpointIdentity
from qeval.targets._retry import RetryPolicy
from qeval.targets._openai_stream import (
    Attempt,
    counted_tokens,
    json_error_text,
    read_chunk,
    read_tail,
    request_body,
)
from qeval.targets._sse import SseParser

# 408/429 and the 5xx that mean "busy or restarting" are worth another try; other 4xx are ours.
_RETRYABLE = frozenset(
    {"timeout", "connection", "truncated", "http_408", "http_429", "http_500", "http_502", "http_503", "http_504"}
)
_PROPS_VALUE_MAX = 2048


class EndpointError(QevalError, ConnectionError):
    """An endpoint cannot be used: the message names the URL, what was tried and how to fix it.

    ``error_kind`` is the same vocabulary as :attr:`EndpointResponse.error_kind`, plus
    ``"auth"`` when the variable named by ``api_key_env`` is not set.
    """

    def __init__(self, message: str, error_kind: str = "connection") -> None:
        super().__init__(message)  # one argument: OSError would read two as (errno, strerror)
        self.error_kind = error_kind


@dataclass(frozen=True)
class EndpointSettings:
    """Where and how to reach a server. Holds the *name* of the key's variable, never the key."""

    base_url: str
    """The OpenAI API root, e.g. ``http://127.0.0.1:8000/v1``; a trailing slash is dropped."""
    model: str | None = None
    """Served model id; None = the only one ``GET {base_url}/models`` lists."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (sent as ``Bearer``)."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    """Longest silence between two reads of one response."""
    retry: RetryPolicy = RetryPolicy()
    concurrency: int = 8
    """Most requests in flight at once (the connection pool's size)."""

    def __post_init__(self) -> None:
        url = self.base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"endpoint base_url {self.base_url!r} must start with http:// or https://")
        object.__setattr__(self, "base_url", url)
        if self.concurrency < 1:
            raise UsageError(f"endpoint concurrency must be >= 1, got {self.concurrency}")
        if not (self.connect_timeout_s > 0 and self.read_timeout_s > 0):
            raise UsageError("endpoint connect_timeout_s and read_timeout_s must be > 0")


@dataclass(frozen=True)
class EndpointRequest:
    """One greedy (temperature 0) generation: exactly one of ``messages`` (chat) or ``prompt``."""

    messages: tuple[tuple[str, str], ...] | None
    """(role, content) pairs -> ``POST /chat/completions``."""
    prompt: str | None
    """Raw text -> ``POST /completions``."""
    max_tokens: int
    stop: tuple[str, ...] = ()
    seed: int | None = 0

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise UsageError("EndpointRequest needs exactly one of messages (chat) or prompt (completions)")
        if self.max_tokens < 1:
            raise UsageError(f"EndpointRequest.max_tokens must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True)
class AttemptRecord:
    """One try of a request: HTTP status (None when no response), its error (None = success)."""

    status: int | None
    error_kind: str | None
    wait_before_s: float
    """Backoff slept before this attempt (0 for the first)."""


@dataclass(frozen=True)
class EndpointResponse:
    """The outcome of a request. Times are from the start of its last attempt."""

    text: str
    finish_reason: str | None
    output_tokens: int | None
    token_source: str
    """"usage" (server count), "tokenizer" (``count_tokens``), "chunks" (content chunks:
    approximate), or "none" (non-streamed, no usage and no tokenizer: ``output_tokens`` None)."""
    content_times_ms: tuple[float, ...]
    """Streaming: per chunk with generated text, ms from request start to its arrival."""
    e2e_ms: float
    """Request start to the last generated text (errors: to the failure)."""
    client_overhead_ms: float
    """Time spent in qeval between a read returning and the next read (parsing, bookkeeping)."""
    attempts: tuple[AttemptRecord, ...]
    error_kind: str | None
    """None, "timeout", "connection", "http_<status>", "truncated" or "bad_response"."""
    error: str | None
    system_fingerprint: str | None = None
    served_model: str | None = None
    queue_wait_ms: float = 0.0
    """Time spent waiting for one of the client's ``concurrency`` slots (all attempts), outside every clock."""


class EndpointClient:
    """Sends :class:`EndpointRequest` s to one server; see the module docstring."""

    def __init__(
        self,
        settings: EndpointSettings,
        *,
        count_tokens: Callable[[str], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._count_tokens = count_tokens
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()  # guards the rng and the lazily resolved model
        self._model = settings.model
        self._secret = _read_key(settings.api_key_env)
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        n = settings.concurrency
        self._slots = threading.BoundedSemaphore(n)
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        )
        c = settings.connect_timeout_s
        self._probe_timeout = httpx.Timeout(c, connect=c)  # start-up probes fail fast, no retries

    def __repr__(self) -> str:
        return f"EndpointClient({self.settings.base_url!r}, model={self._model!r})"

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def identify(self) -> EndpointIdentity:
        """Probe ``GET /models`` (then ``/version`` and ``/props``, best effort); resolve the model.

        Raises :class:`EndpointError` (no retries) when the server is down, refuses the key,
        or the model is ambiguous or not served.
        """
        base = self.settings.base_url
        url = f"{base}/models"
        response = self._probe(url)
        try:
            listing = response.json()
            entries = [e for e in listing.get("data", []) if isinstance(e, dict) and isinstance(e.get("id"), str)]
        except (ValueError, AttributeError, TypeError):
            raise EndpointError(f"GET {url}: the answer is not an OpenAI model list", "bad_response") from None
        listed = tuple(str(e["id"]) for e in entries)
        model = self._pick_model(url, listed)
        entry = next((e for e in entries if e["id"] == model), {})
        max_len = entry.get("max_model_len")
        root = base[: -len("/v1")] if base.endswith("/v1") else base
        props = self._optional_json(f"{root}/props")
        identity = EndpointIdentity(
            base_url=base,
            model=model,
            models_listed=listed,
            max_model_len=max_len if isinstance(max_len, int) else None,
            server_header=response.headers.get("server"),
            version=self._optional_json(f"{root}/version"),
            props=_clip(props) if props is not None else None,
        )
        with self._lock:
            self._model = model
        return identity

    def complete(self, request: EndpointRequest, *, stream: bool = True) -> EndpointResponse:
        """Send ``request``, retrying per the policy. Never raises for server or network faults:
        the response's ``error_kind`` says what went wrong; every attempt is recorded."""
        try:
            model = self._resolved_model()
        except EndpointError as exc:
            return _failure(exc.error_kind, str(exc))
        chat = request.messages is not None
        url = self.settings.base_url + ("/chat/completions" if chat else "/completions")
        body = json.dumps(request_body(request, model, stream)).encode()
        records: list[AttemptRecord] = []
        first_start = time.perf_counter()
        wait = queued_s = 0.0
        while True:
            # A slot is held per attempt, never across a backoff sleep; the wait for one is
            # kept out of the attempt's clock and reported as queue_wait_ms.
            asked = time.perf_counter()
            with self._slots:
                queued_s += time.perf_counter() - asked
                attempt = self._attempt(url, body, chat, stream)
            records.append(AttemptRecord(attempt.status, attempt.error_kind, wait))
            if attempt.error_kind not in _RETRYABLE:
                break
            elapsed = time.perf_counter() - first_start
            with self._lock:
                next_wait = self.settings.retry.wait_s(
                    len(records) + 1, attempt.retry_after, self._rng, elapsed, now_epoch_s=time.time()
                )
            if next_wait is None:
                break
            self._sleep(next_wait)
            wait = next_wait
        return self._response(attempt, tuple(records), stream, queued_s)

    def _attempt(self, url: str, body: bytes, chat: bool, stream: bool) -> Attempt:
        headers = {"Content-Type": "application/json"}
        if stream:  # iter_raw does not decompress, so ask for none
            headers.update({"Accept": "text/event-stream", "Accept-Encoding": "identity"})
        request = self._http.build_request("POST", url, content=body, headers=headers)
        attempt = Attempt(url=url, start=time.perf_counter())
        try:
            response = self._http.send(request, stream=stream)
            try:
                attempt.status = response.status_code
                if response.status_code != 200:
                    response.read()
                    attempt.retry_after = response.headers.get("retry-after")
                    attempt.fail(f"http_{response.status_code}", self._status_message("POST", url, response))
                elif stream:
                    _stream_into(attempt, response, chat)
                else:
                    _fill_from_json(attempt, response, chat)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            attempt.fail("timeout", f"POST {url}: {self._timeout_text(exc)}")
        except httpx.TransportError as exc:
            # After a 200 the stream had begun: a drop there is a truncation, judged below.
            if attempt.status == 200:
                attempt.fail("truncated", f"POST {url}: the stream broke before it finished ({_describe(exc)})")
            else:
                attempt.fail("connection", f"POST {url}: {_describe(exc)}")
        attempt.settle()
        if attempt.error:
            attempt.error = self._redact(attempt.error)
        return attempt

    def _response(
        self, attempt: Attempt, records: tuple[AttemptRecord, ...], stream: bool, queued_s: float
    ) -> EndpointResponse:
        text = "".join(attempt.text)
        tokens, source = counted_tokens(attempt, self._count_tokens, stream)
        error = attempt.error
        if error is not None and len(records) > 1:
            error = f"{error} (gave up after {len(records)} attempts)"
        return EndpointResponse(
            text=text,
            finish_reason=attempt.finish_reason,
            output_tokens=tokens,
            token_source=source,
            content_times_ms=tuple(attempt.content_times_ms),
            e2e_ms=attempt.e2e_ms(),
            client_overhead_ms=attempt.overhead_s * 1000.0,
            attempts=records,
            error_kind=attempt.error_kind,
            error=error,
            system_fingerprint=attempt.fingerprint,
            served_model=attempt.served_model,
            queue_wait_ms=queued_s * 1000.0,
        )

    def served_model(self) -> str:
        """The model id requests name (resolved from ``GET /models`` once, if not given)."""
        return self._resolved_model()

    def _resolved_model(self) -> str:
        with self._lock:
            model = self._model
        return model if model is not None else self.identify().model

    def _pick_model(self, url: str, listed: tuple[str, ...]) -> str:
        wanted = self.settings.model
        choices = ", ".join(listed)
        if wanted is not None:
            if listed and wanted not in listed:
                raise EndpointError(f"GET {url}: model {wanted!r} is not served; the server lists: {choices}. "
                                    "Set the endpoint's model to one of them.", "http_404")
            return wanted
        if len(listed) == 1:
            return listed[0]
        if not listed:
            raise EndpointError(f"GET {url}: the server lists no models; name the served model explicitly.",
                                "bad_response")
        raise EndpointError(f"GET {url}: the server lists several models ({choices}); "
                            "name the one to evaluate explicitly.", "bad_response")

    def _probe(self, url: str) -> httpx.Response:
        with self._slots:
            try:
                response = self._http.get(url, timeout=self._probe_timeout)
            except httpx.TimeoutException:
                message = f"no answer within {self.settings.connect_timeout_s:g} s"
                raise EndpointError(self._redact(f"GET {url}: {message}. {_CHECK_SERVER}"), "timeout") from None
            except httpx.TransportError as exc:
                raise EndpointError(self._redact(f"GET {url}: {_describe(exc)}. {_CHECK_SERVER}")) from None
        if response.status_code != 200:
            message = self._status_message("GET", url, response)
            if response.status_code == 404:
                message += ". Is base_url the OpenAI API root? It usually ends in /v1."
            raise EndpointError(message, f"http_{response.status_code}")
        return response

    def _optional_json(self, url: str) -> Mapping[str, Any] | None:
        try:
            with self._slots:
                response = self._http.get(url, timeout=self._probe_timeout)
            value = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _status_message(self, method: str, url: str, response: httpx.Response) -> str:
        message = f"{method} {url}: HTTP {response.status_code} {response.reason_phrase}: {_error_text(response)}"
        if response.status_code in (401, 403):
            env = self.settings.api_key_env
            message += (f". Set the environment variable {env} to a key this server accepts."
                        if env else ". The server wants an API key: put it in an environment variable "
                        "and name that variable as the endpoint's api_key_env.")
        return self._redact(message)

    def _timeout_text(self, exc: httpx.TimeoutException) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"could not connect within {self.settings.connect_timeout_s:g} s"
        return f"no bytes for {self.settings.read_timeout_s:g} s ({type(exc).__name__})"

    def _redact(self, text: str) -> str:
        # A server may echo the key it refused ("Incorrect API key provided: sk-...").
        return text.replace(self._secret, "***") if self._secret else text


_CHECK_SERVER = "Check that the server is running and that base_url is right (e.g. http://127.0.0.1:8000/v1)."


def auth_headers(settings: EndpointSettings) -> dict[str, str]:
    """The ``Authorization`` header for ``settings`` (empty without a key), the key read from the
    environment now. Raises :class:`EndpointError` ("auth") when the named variable is unset."""
    secret = _read_key(settings.api_key_env)
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def _read_key(env: str | None) -> str | None:
    if env is None:
        return None
    key = os.environ.get(env)
    if not key:
        raise EndpointError(f"the endpoint's api_key_env names {env}, but that environment variable is "
                            f"not set or empty: export {env}=<your key>.", "auth")
    return key


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return f"connection refused ({text})"
    return text


def _clip(value: Any) -> Any:
    """Cut every string in a JSON value to 2 KB (llama.cpp's props carry whole chat templates)."""
    if isinstance(value, str):
        return value[:_PROPS_VALUE_MAX]
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value]
    return value


def _failure(kind: str, message: str) -> EndpointResponse:
    return EndpointResponse(text="", finish_reason=None, output_tokens=None, token_source="none",
                            content_times_ms=(), e2e_ms=0.0, client_overhead_ms=0.0,
                            attempts=(AttemptRecord(None, kind, 0.0),), error_kind=kind, error=message)


def _stream_into(attempt: Attempt, response: httpx.Response, chat: bool) -> None:
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:  # the server ignored "stream": a 200 without timings is no success
        response.read()
        attempt.fail("bad_response", f"POST {attempt.url}: asked for a stream, got {content_type}")
        return
    parser = SseParser()
    for raw in response.iter_raw():
        read_chunk(attempt, parser, raw, time.perf_counter(), chat)  # stamped before parsing
        if attempt.error_kind is not None:
            return
        # After [DONE] the body is read to its end anyway: a response closed early loses its
        # keep-alive connection, and the next request would pay a new connect inside its TTFT.
    read_tail(attempt, parser, chat)


def _fill_from_json(attempt: Attempt, response: httpx.Response, chat: bool) -> None:
    received = time.perf_counter()
    attempt.end_ms = (received - attempt.start) * 1000.0
    try:
        obj = response.json()
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or not (obj.get("choices") or obj.get("error")):
        attempt.fail("bad_response", f"POST {attempt.url}: the answer is not a completion: {response.text[:120]!r}")
    else:
        attempt.note(obj, None, chat)
        attempt.done = attempt.error_kind is None
    attempt.overhead_s = time.perf_counter() - received


def _error_text(response: httpx.Response) -> str:
    """One line from an error body: the JSON error's message, else the text."""
    try:
        obj = response.json()
    except ValueError:
        obj = None
    text = json_error_text(obj) if isinstance(obj, dict) else response.text
    return " ".join(text.split())[:300] or "(empty body)"


