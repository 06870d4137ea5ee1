"""Reading one OpenAI-compatible completion, streamed (SSE) or whole: the request body qeval
sends and the per-attempt record its chunks fill. Shared by the synchronous client
(:mod:`qeval.targets._http`, accuracy and timed passes) and the asyncio load generator
(:mod:`qeval.load._client`), so both count tokens, time chunks and judge truncation alike.

A chunk's time is taken by the caller as soon as its socket read returns, before parsing
(:func:`read_chunk`): TTFT must not include qeval's own work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qeval.targets._sse import SseParser

if TYPE_CHECKING:
    from qeval.targets._http import EndpointRequest


@dataclass
class Attempt:
    """Scratch record of one attempt while it runs; frozen into an EndpointResponse at the end."""

    url: str
    start: float
    status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    retry_after: str | None = None
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    content_times_ms: list[float] = field(default_factory=list)
    finish_ms: float | None = None
    end_ms: float | None = None
    finish_reason: str | None = None
    usage_tokens: int | None = None
    fingerprint: str | None = None
    served_model: str | None = None
    done: bool = False
    overhead_s: float = 0.0

    def fail(self, kind: str, message: str) -> None:
        if self.error_kind is None:  # the first fault is the cause; later ones are its echoes
            self.error_kind, self.error = kind, message
        if self.end_ms is None:
            self.end_ms = (time.perf_counter() - self.start) * 1000.0

    def settle(self) -> None:
        """Decide the outcome once the response is closed."""
        finished = self.finish_reason is not None  # [DONE] alone does not say the generation finished
        if self.status == 200 and finished and self.error_kind in (None, "truncated", "timeout"):
            # Generation completed: a drop or a silence after it loses nothing.
            self.error_kind = self.error = None
        elif self.status == 200 and self.error_kind is None and not finished:
            self.fail("truncated", f"POST {self.url}: the stream ended without [DONE] or a finish_reason")
        if self.end_ms is None:
            self.end_ms = (time.perf_counter() - self.start) * 1000.0

    def e2e_ms(self) -> float:
        if self.error_kind is None and self.content_times_ms:
            return self.content_times_ms[-1]  # the trailing usage chunk and [DONE] do not count
        if self.error_kind is None and self.finish_ms is not None:
            return self.finish_ms
        return self.end_ms if self.end_ms is not None else 0.0

    def note(self, obj: dict[str, Any], t_ms: float | None, chat: bool) -> None:
        """Take text, finish reason, usage and metadata from one decoded chunk or body."""
        if obj.get("error") is not None or obj.get("object") == "error":
            self.fail("bad_response", f"POST {self.url}: the server sent an error: {json_error_text(obj)}")
            return
        if isinstance(obj.get("model"), str):
            self.served_model = obj["model"]
        if isinstance(obj.get("system_fingerprint"), str):
            self.fingerprint = obj["system_fingerprint"]
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            # chat: choices[0].delta (stream) or .message; completions: choices[0].text
            part = choice.get("delta" if t_ms is not None else "message") if chat else choice
            content, reasoning = pieces(part, "content" if chat else "text")
            self.text.append(content)
            self.reasoning.append(reasoning)
            if t_ms is not None and (content or reasoning):  # role-only and empty chunks are no token
                self.content_times_ms.append(t_ms)
            if choice.get("finish_reason") is not None and self.finish_reason is None:
                self.finish_reason = str(choice["finish_reason"])
                self.finish_ms = t_ms
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]


def request_body(request: EndpointRequest, model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if request.messages is not None:
        body["messages"] = [{"role": role, "content": content} for role, content in request.messages]
    else:
        body["prompt"] = request.prompt
    body["max_tokens"] = request.max_tokens
    body["temperature"] = 0
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def counted_tokens(attempt: Attempt, count_tokens: Callable[[str], int] | None, stream: bool) -> tuple[int | None, str]:
    """``(output tokens, source)``: the server's usage count; else ``count_tokens`` over the text
    (reasoning included); else, streamed, the content chunks (approximate); else unknown."""
    if attempt.usage_tokens is not None:
        return attempt.usage_tokens, "usage"
    if count_tokens is not None:
        return count_tokens("".join(attempt.reasoning) + "".join(attempt.text)), "tokenizer"
    if stream:
        return len(attempt.content_times_ms), "chunks"
    return None, "none"


def read_chunk(attempt: Attempt, parser: SseParser, raw: bytes, arrived: float, chat: bool) -> None:
    """Feed one raw read (``arrived``: its ``perf_counter`` time) into ``attempt``; the parsing
    time is added to ``attempt.overhead_s``."""
    t_ms = (arrived - attempt.start) * 1000.0
    for event in parser.feed(raw):
        on_event(attempt, event.data, t_ms, chat)
    attempt.overhead_s += time.perf_counter() - arrived


def read_tail(attempt: Attempt, parser: SseParser, chat: bool) -> None:
    """Whatever the parser still holds once the body has ended (a last event without a blank line)."""
    for event in parser.close():
        on_event(attempt, event.data, (time.perf_counter() - attempt.start) * 1000.0, chat)


def on_event(attempt: Attempt, data: str, t_ms: float, chat: bool) -> None:
    if attempt.done or attempt.error_kind is not None:
        return
    if data.strip() == "[DONE]":
        if attempt.finish_reason is None:
            # what llama-cpp-python sends for a stream a newer request cut off (--interrupt_requests
            # True, its default): HTTP 200, a role chunk, then [DONE] -- a short answer, not a finished one
            attempt.fail("truncated", f"POST {attempt.url}: the stream ended with [DONE] before any chunk carried "
                                      "a finish_reason (the server cut it off)")
        attempt.done = True
        return
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        attempt.fail("bad_response", f"POST {attempt.url}: a stream event is not a JSON object: {data[:120]!r}")
        return
    attempt.note(obj, t_ms, chat)


def pieces(part: object, key: str) -> tuple[str, str]:
    """(generated text, reasoning text) of a delta, message or completion choice."""
    if not isinstance(part, dict):
        return "", ""
    content = part.get(key)
    reasoning = part.get("reasoning_content") or part.get("reasoning")  # vLLM/SGLang reasoning parsers
    return (content if isinstance(content, str) else "", reasoning if isinstance(reasoning, str) else "")


def json_error_text(obj: dict[str, Any]) -> str:
    error = obj.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error  # TGI: {"error": "...", "error_type": "..."}
    for key in ("message", "detail"):  # vLLM's older ErrorResponse; FastAPI's validation errors
        if obj.get(key):
            return str(obj[key])
    return json.dumps(obj)[:300]
