"""The load generator's client for OpenAI-compatible servers: asyncio + aiohttp, streamed.

Why not the synchronous client (:class:`qeval.targets._http.EndpointClient`): it holds one
thread per request in flight, and at hundreds of requests per second on two cores the
threads themselves become the bottleneck. This client reads each response exactly as that
one does (:mod:`qeval.targets._openai_stream`: the same request body, chunk timestamps taken
as the socket read returns and before parsing, the same token counting and truncation rules)
so a figure means the same whichever client measured it.

Two deliberate differences from the accuracy client:

* **No retries.** Under load a retry hides an error and stretches a latency; the failure is
  recorded by kind (``http_503``, ``timeout``, ...) and counted in the level's error rate.
* **No pool ceiling of its own.** The connector's limit is the level's concurrency (closed
  loop) or the client cap (open loop), never less: a request never waits for a connection
  inside its own clock. Time a request waits on the generator's cap is measured apart
  (:attr:`qeval.load._types.RequestSample.cap_wait_ms`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from qeval.load._types import Reply
from qeval.targets._http import EndpointRequest, EndpointSettings, auth_headers
from qeval.targets._openai_stream import Attempt, counted_tokens, read_chunk, read_tail, request_body
from qeval.targets._sse import SseParser


class LoadClient:
    """Streams requests to one server from an asyncio loop. Use as ``async with``."""

    def __init__(
        self,
        settings: EndpointSettings,
        model: str,
        *,
        max_connections: int,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self._max_connections = max(1, max_connections)
        self._count_tokens = count_tokens
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream",
                         **auth_headers(settings)}
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"LoadClient({self.settings.base_url!r}, model={self.model!r})"

    async def __aenter__(self) -> LoadClient:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                         ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout_s,
                                        sock_read=self.settings.read_timeout_s)
        # auto_decompress off: chunks are timed as they arrive, as the synchronous client does
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                              headers={"Accept-Encoding": "identity"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: EndpointRequest) -> Reply:
        """One streamed request; never raises for server or network faults (``Reply.error_kind``)."""
        assert self._session is not None, "use LoadClient as `async with`"
        chat = request.messages is not None
        url = self.settings.base_url + ("/chat/completions" if chat else "/completions")
        body = json.dumps(request_body(request, self.model, True)).encode()
        attempt = Attempt(url=url, start=time.perf_counter())
        try:
            async with self._session.post(url, data=body, headers=self._headers) as response:
                attempt.status = response.status
                if response.status != 200:
                    text = (await response.read())[:300].decode("utf-8", "replace")
                    attempt.fail(f"http_{response.status}", f"POST {url}: HTTP {response.status}: {' '.join(text.split())}")
                elif "json" in response.headers.get("content-type", ""):
                    await response.read()
                    attempt.fail("bad_response", f"POST {url}: asked for a stream, got {response.content_type}")
                else:
                    await _stream_into(attempt, response, chat)
        except asyncio.TimeoutError:
            attempt.fail("timeout", f"POST {url}: no bytes for {self.settings.read_timeout_s:g} s")
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            kind = "truncated" if attempt.status == 200 else "connection"
            attempt.fail(kind, f"POST {url}: {type(exc).__name__}: {exc}")
        except aiohttp.ClientError as exc:
            attempt.fail("connection", f"POST {url}: {type(exc).__name__}: {exc}")
        attempt.settle()
        tokens, source = counted_tokens(attempt, self._count_tokens, True)
        return Reply(
            token_times_ms=tuple(attempt.content_times_ms),
            e2e_ms=attempt.e2e_ms(),
            output_tokens=tokens if attempt.error_kind is None else None,
            error_kind=attempt.error_kind,
            error=attempt.error,
            client_overhead_ms=attempt.overhead_s * 1000.0,
            token_source=source,
        )


async def _stream_into(attempt: Attempt, response: Any, chat: bool) -> None:
    parser = SseParser()
    async for raw in response.content.iter_any():
        read_chunk(attempt, parser, raw, time.perf_counter(), chat)  # stamped before parsing
        if attempt.error_kind is not None:
            return
    read_tail(attempt, parser, chat)
