"""A scripted OpenAI-compatible server: real sockets, faults on demand.

Usage::

    with ScriptedServer(faults=["429"], chunk_delay_s=0.01) as server:
        client = EndpointClient(EndpointSettings(server.base_url, model=server.models[0]))

It streams like vLLM (a role-only chunk first for chat, one word per content chunk, a
separate finish chunk, a usage chunk when ``stream_options.include_usage``, then
``[DONE]``), writing each SSE event as its own HTTP chunk with a flush so they reach the
client separately. ``faults`` are consumed one per completion request (``models_faults``
likewise by ``GET /v1/models``):

``"429"`` (``Retry-After: 0``), ``"500"``, ``"400"``, ``"401"`` (echoes the key it got, as some servers
do), ``"drop"`` (closes before any response), ``"stall"`` (headers, then silence for
``stall_s``), ``"truncate"`` (role chunk and two words, then closes mid-body), ``"done_early"``
(role chunk and two words, then ``[DONE]`` with no finish_reason: llama-cpp-python's cut stream),
``"role_first"`` (role chunk, a comment and empty-content chunks before the content),
``"no_usage"``, ``"error_event"`` (an ``{"error": ...}`` event), ``"bad_json"``, ``"ok"``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("429", "500", "400", "401", "drop", "stall", "truncate", "done_early", "role_first", "no_usage", "error_event",
          "bad_json", "ok")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    client_port: int
    """The client's port: one per TCP connection, so keep-alive reuse shows."""


def echo_responder(body: Mapping[str, Any]) -> str:
    """Default completion text: "echo:" and the last message (or the prompt)."""
    source = body["messages"][-1]["content"] if "messages" in body else body.get("prompt", "")
    return f"echo: {source}"


class ScriptedServer:
    """Context manager: starts on 127.0.0.1 on a free port, always stops on exit."""

    def __init__(
        self,
        *,
        models: Iterable[str] = ("scripted-model",),
        responder: Callable[[Mapping[str, Any]], str] = echo_responder,
        faults: Iterable[str] = (),
        models_faults: Iterable[str] = (),
        chunk_delay_s: float = 0.0,
        first_content_delay_s: float = 0.0,
        tail_delay_s: float = 0.0,
        stall_s: float = 5.0,
        version: Mapping[str, Any] | None = None,
        props: Mapping[str, Any] | None = None,
        port: int = 0,
    ) -> None:
        self.models = list(models)
        self._port = port
        self.responder = responder
        self.chunk_delay_s = chunk_delay_s
        self.first_content_delay_s = first_content_delay_s
        self.tail_delay_s = tail_delay_s
        self.stall_s = stall_s
        self.version = version
        self.props = props
        self._faults: deque[str] = deque()
        self._models_faults: deque[str] = deque(_checked(models_faults))
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()  # wakes stalled handlers at stop
        self.add_faults(*faults)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_faults(self, *faults: str) -> None:
        """Queue more faults (consumed one per ``/v1/*`` request, in order)."""
        with self._lock:
            self._faults.extend(_checked(faults))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI API root, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        httpd = _Server(("127.0.0.1", self._port), _Handler)
        httpd.script = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def next_fault(self, path: str) -> str:
        if path not in ("/v1/models", "/v1/chat/completions", "/v1/completions"):
            return "ok"
        queue = self._models_faults if path == "/v1/models" else self._faults
        with self._lock:
            return queue.popleft() if queue else "ok"


def _checked(faults: Iterable[str]) -> list[str]:
    faults = list(faults)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
    return faults


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stalled handler must not hold up stop()
    request_queue_size = 64
    script: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is no server bug
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like a real server
    server_version = "scripted-server/1.0"
    sys_version = ""
    timeout = 10  # idle keep-alive connections end on their own
    disable_nagle_algorithm = True  # as uvicorn does: small SSE writes would otherwise wait ~40 ms for an ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        script = self.server.script
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        script.record(RecordedRequest(method, self.path, headers, body, int(self.client_address[1])))
        path = self.path.split("?")[0]
        if path in ("/version", "/props"):
            found = script.version if path == "/version" else script.props
            self._json(200, found) if found is not None else self._json(404, {"error": "not found"})
            return
        fault = script.next_fault(path)
        if fault == "drop":
            self.close_connection = True
            return
        if fault in ("429", "500", "400", "401"):
            status = int(fault)
            message = f"Incorrect API key provided: {headers.get('authorization')}" if status == 401 else "scripted"
            extra = {"Retry-After": "0"} if status == 429 else {}
            self._json(status, {"error": {"message": message, "type": "scripted", "code": status}}, extra)
            return
        if fault == "stall":
            self._start_stream()
            script.stopping.wait(script.stall_s)
            self.close_connection = True
            return
        if path == "/v1/models" and method == "GET":
            data = [{"id": m, "object": "model", "owned_by": "scripted", "max_model_len": 2048} for m in script.models]
            self._json(200, {"object": "list", "data": data})
        elif path in ("/v1/chat/completions", "/v1/completions") and method == "POST":
            self._complete(body or {}, path.endswith("chat/completions"), fault)
        else:
            self._json(404, {"error": {"message": f"no route {method} {path}"}})

    def _complete(self, body: dict[str, Any], chat: bool, fault: str) -> None:
        script = self.server.script
        text = script.responder(body)
        words = text.split(" ") if text else []
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        finish = "stop"
        if len(pieces) > int(body.get("max_tokens") or 1 << 30):
            pieces, finish = pieces[: int(body["max_tokens"])], "length"
        usage = {"prompt_tokens": 3, "completion_tokens": len(pieces), "total_tokens": 3 + len(pieces)}
        head = {"id": "cmpl-scripted", "created": int(time.time()), "model": body.get("model"),
                "system_fingerprint": "fp-scripted"}
        if not body.get("stream"):
            out = "".join(pieces)
            choice = {"index": 0, "message": {"role": "assistant", "content": out}} if chat else {"index": 0, "text": out}
            reply = {**head, "object": "chat.completion" if chat else "text_completion",
                     "choices": [{**choice, "finish_reason": finish}]}
            self._json(200, reply if fault == "no_usage" else {**reply, "usage": usage})
            return
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, finish_reason: str | None = None, role: bool = False) -> None:
            if chat:
                delta: dict[str, Any] = {"role": "assistant"} if role else {}
                if piece is not None:
                    delta["content"] = piece
                choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            else:
                choice = {"index": 0, "text": piece or "", "finish_reason": finish_reason}
            self._event({**head, "object": kind, "choices": [choice]})

        self._start_stream()
        if chat:
            chunk("", role=True)
        if fault == "role_first":
            self._write_chunk(b": keep-alive\n\n")
            chunk("")
            chunk("")
        time.sleep(script.first_content_delay_s)
        for i, piece in enumerate(pieces):
            if fault == "truncate" and i == 2:
                self.close_connection = True  # no terminating chunk: the body is cut
                return
            if fault == "done_early" and i == 2:  # a clean end of the body, but no finish_reason
                self._write_chunk(b"data: [DONE]\n\n")
                self._write_chunk(b"")
                return
            if i:
                time.sleep(script.chunk_delay_s)
            chunk(piece)
        if fault == "truncate":
            self.close_connection = True
            return
        if fault == "error_event":
            self._event({"error": {"message": "scripted mid-stream failure", "type": "scripted", "code": 500}})
        if fault == "bad_json":
            self._write_chunk(b"data: {not json\n\n")
        chunk(None, finish)
        time.sleep(script.tail_delay_s)
        if (body.get("stream_options") or {}).get("include_usage") and fault != "no_usage":
            self._event({**head, "object": kind, "choices": [], "usage": usage})
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # the zero-length chunk ends the body

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _event(self, obj: Mapping[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _json(self, status: int, obj: Any, extra_headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def main(argv: list[str]) -> None:
    """``python tests/targets/scripted_server.py PORT [--spawn-child] [--fail-start]``: serve until
    killed, as a stand-in engine process for :class:`qeval.engines.ManagedServer` tests.
    ``--spawn-child`` starts a long-sleeping child first (like vLLM's engine core), which a stop
    or the parent-death guard must take down too; ``--fail-start`` prints an error and exits 3."""
    import subprocess

    if "--fail-start" in argv:
        print("ValueError: scripted start-up failure: quantization 'fake' is not supported on this platform.")
        sys.exit(3)
    if "--spawn-child" in argv:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with ScriptedServer(port=int(argv[0]), models=("qeval-served",)):
        print("ready", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
