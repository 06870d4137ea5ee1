"""A served target qeval runs itself: ``NAME=vllm:MODEL@PRECISION``, ``NAME=llamacpp:MODEL@QTYPE``.

Provisioning is the whole loop: make (or reuse) the checkpoint the precision needs, start the
engine on a free loopback port with its log in ``RUN_DIR/servers/NAME.log``, wait until it is
healthy, time a first one-token request (the cold start is spawn → healthy → first token), and
hand back the endpoint client as the target's model. Closing the model stops the server, so
one server runs at a time and none outlives the run (see :mod:`qeval.engines._process`).

An engine that refuses the precision on this hardware makes a ``skipped`` target with the
engine's own words; any other start-up failure a ``failed`` one, with the log's tail.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qeval.applied import AppliedPrecision, EndpointUsed, EngineUsed
from qeval.generation import GenerationSettings
from qeval.engines._base import Checkpoint, Engine
from qeval.engines._process import ManagedServer, ServerError
from qeval.errors import BackendUnavailable
from qeval.models._base import LoadedModel, Message
from qeval.results import ModelCard
from qeval.targets._endpoint import EndpointModel, EndpointTarget
from qeval.targets._spec import TargetSpec

HOST = "127.0.0.1"


class ManagedModel(EndpointModel):
    """The endpoint client of a server qeval started: closing it stops the server. Its weights are
    the checkpoint's bytes; its peak memory is the server's (every process of its group)."""

    def __init__(self, client: Any, concurrency: int, server: ManagedServer, checkpoint: Checkpoint,
                 count_tokens: Any = None) -> None:
        super().__init__(client, concurrency, count_tokens=count_tokens)
        self.server = server
        self.checkpoint = checkpoint
        self._peak = _GroupPeak(server)

    def weights_bytes(self) -> int | None:
        return self.checkpoint.weights_bytes

    def server_peak_bytes(self) -> int | None:
        """The largest resident set of the server's process group seen so far."""
        return self._peak.peak_bytes

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._peak.stop()
            self.server.stop()


class _GroupPeak:
    """Samples the resident memory of a server's process group every 0.25 s."""

    def __init__(self, server: ManagedServer) -> None:
        self.server = server
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qeval-server-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = group_rss_bytes(self.server.pgid)
            if rss is not None:
                self.peak_bytes = max(self.peak_bytes or 0, rss)
            self._stop.wait(0.25)

    def stop(self) -> None:
        self._stop.set()


def group_rss_bytes(pgid: int | None) -> int | None:
    """Resident bytes of the server's process group: its leader (the guard, whose pid is the
    group id) and every descendant still in the group. Walks the leader's process tree, not the
    whole machine's process table: it runs four times a second beside the load generator."""
    if pgid is None:
        return None
    import os

    import psutil

    try:
        leader = psutil.Process(pgid)
        members = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in members:
        try:
            if os.getpgid(proc.pid) == pgid:
                total += proc.memory_info().rss
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return total or None


@dataclass
class ManagedTarget:
    """``NAME=ENGINE:MODEL@PRECISION``: qeval prepares the checkpoint and serves it with ``engine``."""

    spec: TargetSpec
    engine: Engine
    calibration: Any = None
    servers_dir: Path | None = None
    concurrency: int = 8
    read_timeout_s: float = 120.0
    startup_timeout_s: float = 600.0
    count_tokens: Any = None
    card: ModelCard = field(init=False)

    def __post_init__(self) -> None:
        from qeval.models._builtin import BUILTINS

        builtin = BUILTINS.get(str(self.spec.model))
        served = f"Served by {self.engine.name}, started and stopped by qeval."
        self.card = ModelCard(
            spec=self.spec.spec, name=builtin.name if builtin else str(self.spec.model),
            source_precision=(f"{builtin.source_precision}; " if builtin else "")
            + f"served by {self.engine.name} at {self.spec.precision}",
            parameters=None, architecture=None, path=None,
            # the bundled model was 4-bit before anyone quantised it: say so wherever it is evaluated
            notes=f"{builtin.notes} {served}" if builtin else served,
        )

    @property
    def description(self) -> str:
        return f"{self.engine.name} serving {self.spec.model} at {self.spec.precision} (started by qeval)"

    def unavailable_reason(self, device: str) -> str | None:
        return self.engine.unavailable_reason(str(self.spec.precision))

    def provision(self, device: str) -> LoadedModel:
        precision = str(self.spec.precision)
        say = _say
        start = time.perf_counter()
        checkpoint = self.engine.prepare(str(self.spec.model), precision, self.calibration, say)
        engine_args = tuple(self.spec.engine_args)
        launches: list[Any] = []

        def command(port: int) -> Sequence[str]:
            launches.append(self.engine.launch(checkpoint, precision, HOST, port, engine_args))
            return list(launches[-1].argv)

        first = self.engine.launch(checkpoint, precision, HOST, 0, engine_args)
        log = (self.servers_dir or Path.cwd() / "servers") / f"{self.spec.name}.log"
        server = ManagedServer(
            command, lambda port: f"http://{HOST}:{port}{first.health_path}", name=f"{self.engine.name}-{self.spec.name}",
            host=HOST, startup_timeout_s=self.startup_timeout_s, log_path=log, env=first.env,
            python=self.engine.python(),
        )
        spawned = time.perf_counter()
        try:
            server.start()
        except ServerError as exc:
            tail = server.log_tail(400)
            refused = self.engine.refusal(tail, precision)
            if refused:
                raise BackendUnavailable(f"{refused} (log: {log})") from None
            cause = root_cause(tail)
            if cause:
                raise ServerError(f"{cause}\n{exc}", exc.log_tail) from None
            raise
        try:
            return self._connect(server, checkpoint, launches[-1], spawned, start, log)
        except BaseException:
            server.stop()
            raise

    def _connect(self, server: ManagedServer, checkpoint: Checkpoint, launch: Any, spawned: float, start: float,
                 log: Path) -> LoadedModel:
        from qeval.targets._http import EndpointClient

        endpoint_spec = TargetSpec(name=self.spec.name, kind="openai", url=f"http://{HOST}:{server.port}/v1",
                                   served_model=launch.served_model)
        endpoint = EndpointTarget(endpoint_spec, concurrency=self.concurrency, read_timeout_s=self.read_timeout_s,
                                  count_tokens=self.count_tokens)
        identity = endpoint.identify()
        client = EndpointClient(replace(endpoint.settings(), model=identity.model), count_tokens=self.count_tokens)
        model = ManagedModel(client, self.concurrency, server, checkpoint, count_tokens=self.count_tokens)
        healthy_s = time.perf_counter() - spawned
        try:
            prompt = model.prepare([Message("user", "Hello")], chat=False)
            first = model.generate_timed(prompt, GenerationSettings(max_new_tokens=1, stop=()))
            if first.error_kind is not None:
                # healthy, but the first forward pass failed: a kernel this build or CPU lacks
                # (vLLM CPU's GPTQ path: "'_C' object has no attribute 'cpu_gemm_wna16'"), or a crash
                time.sleep(1.0)  # let the engine finish writing its traceback
                self._first_request_failed(server, str(first.error_kind), log)
        except BaseException:
            model.close()
            raise
        first_token_s = time.perf_counter() - spawned
        engine = EngineUsed(
            engine=self.engine.name, version=self.engine.version(), command=tuple(launch.argv),
            checkpoint=str(checkpoint.path), checkpoint_sha256=checkpoint.sha256,
            weights_bytes=checkpoint.weights_bytes, quant_config=dict(checkpoint.quant_config),
            prepared_by=checkpoint.prepared_by, checkpoint_cache=checkpoint.cache, notes=checkpoint.notes,
            log=str(log), spawn_to_healthy_s=round(healthy_s, 3), first_token_s=round(first_token_s, 3),
        )
        import socket

        applied = AppliedPrecision(
            precision=str(self.spec.precision), description=self.description, library=self.engine.name,
            library_version=engine.version, checkpoint=str(checkpoint.path), cache=checkpoint.cache,
            quantize_seconds=checkpoint.prepare_s if checkpoint.cache == "miss" else None,
            endpoint=EndpointUsed(url=str(endpoint_spec.url), served_model=identity.model, concurrency=self.concurrency,
                                  identity=identity, client_host=socket.gethostname()),
            engine=engine,
        )
        return LoadedModel(model=model, load_s=first_token_s, quantize_s=checkpoint.prepare_s, applied=applied)


    def _first_request_failed(self, server: ManagedServer, kind: str, log: Path) -> None:
        tail = server.log_tail(400)
        precision = str(self.spec.precision)
        refused = self.engine.refusal(tail, precision)
        if refused:
            raise BackendUnavailable(f"{refused} (it started, then failed its first request; log: {log})")
        raise ServerError(f"{self.engine.name} started but failed its first request ({kind}). Log {log}, last lines:\n"
                          + "\n".join(tail.splitlines()[-40:]), tail)


_ERROR_LINE = re.compile(r"\b([A-Z][A-Za-z]*(?:Error|Exception)): (.+)$")
_ARGPARSE = re.compile(r"^[\w.\-]+: error: (.+)$")
_NOT_ERRORS = re.compile(r"\b(WARNING|INFO|DEBUG)\b")
_WRAPPERS = ("Engine core initialization failed", "EngineCore encountered an issue")


def root_cause(log_tail: str) -> str | None:
    """The first ``SomethingError: message`` in an engine's log that is not a wrapper around another
    (vLLM's "Engine core initialization failed. See root cause above"), or an argument parser's
    complaint (``api_server.py: error: unrecognized arguments: --x``): what a user must read."""
    for line in reversed(log_tail.splitlines()):
        found = _ARGPARSE.match(line.strip())
        if found:
            return f"the engine rejected its arguments: {found.group(1)}"
    for line in log_tail.splitlines():
        if _NOT_ERRORS.search(line):  # a warning that quotes an error ("fd limit errors like OSError: ...")
            continue
        found = _ERROR_LINE.search(line)
        if found and not any(w in found.group(2) for w in _WRAPPERS):
            return f"{found.group(1)}: {found.group(2).strip()}"
    return None


def _say(text: str) -> None:
    import sys

    print(f"qeval: {text}", file=sys.stderr, flush=True)


__all__ = ["HOST", "ManagedModel", "ManagedTarget", "group_rss_bytes", "root_cause"]
