"""A loopback OpenAI-compatible streaming server for the load generator's tests and benchmark.

Runs in a child process (its own interpreter: its CPU time is not the generator's event loop)
on 127.0.0.1, aiohttp. Each completion streams ``tokens`` content chunks like vLLM does (a
content chunk per token, a finish chunk, a usage chunk, ``[DONE]``), waiting
``first_token_s`` before the first chunk and ``token_gap_s`` between the others (0: as fast as
it can: the "zero-latency" server). ``serial=True`` serves one completion at a time (a
server with a single slot): the generator must see the queueing that causes.

    with Loopback(tokens=4, token_gap_s=0.0) as server:
        ... server.base_url ...  # http://127.0.0.1:PORT/v1, model "loopback"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODEL = "loopback"


@dataclass(frozen=True)
class Shape:
    tokens: int = 4
    first_token_s: float = 0.0
    token_gap_s: float = 0.0
    serial: bool = False


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    obj: dict = {"id": "x", "object": "text_completion", "model": MODEL, "choices": []}
    if content is not None or finish is not None:
        obj["choices"] = [{"index": 0, "text": content or "", "finish_reason": finish}]
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _serve(port: int, shape: Shape) -> None:  # pragma: no cover - runs in the child
    from aiohttp import web

    lock = asyncio.Lock()

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def stream(request, response):
        if shape.first_token_s:
            await asyncio.sleep(shape.first_token_s)
        for i in range(shape.tokens):
            if i and shape.token_gap_s:
                await asyncio.sleep(shape.token_gap_s)
            await response.write(_chunk(" t"))
        await response.write(_chunk(None, finish="length"))
        await response.write(_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": shape.tokens,
                                                 "total_tokens": 3 + shape.tokens}))
        await response.write(b"data: [DONE]\n\n")

    async def complete(request):
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if shape.serial:
            async with lock:
                await stream(request, response)
        else:
            await stream(request, response)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", complete)
    app.router.add_post("/v1/chat/completions", complete)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Loopback:
    """Context manager: the server in a child process (``python -m tests.load.loopback``), killed on exit."""

    def __init__(self, tokens: int = 4, first_token_s: float = 0.0, token_gap_s: float = 0.0,
                 serial: bool = False) -> None:
        self.shape = Shape(tokens, first_token_s, token_gap_s, serial)
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Loopback:
        shape = json.dumps({"port": self.port, **asdict(self.shape)})
        self._process = subprocess.Popen([sys.executable, "-m", "tests.load.loopback", shape], cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the loopback server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)


if __name__ == "__main__":  # pragma: no cover - the child
    args = json.loads(sys.argv[1])
    _serve(args.pop("port"), Shape(**args))
