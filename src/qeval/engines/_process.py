"""A server qeval starts itself: its own process group, a log file, a health wait, and no
way to outlive qeval.

:class:`ManagedServer` runs an engine's command line (vLLM, llama.cpp's server) and stops it
on every exit path:

* ``stop()`` / the ``with`` block: SIGTERM to the whole group, SIGKILL after a grace period;
* an ``atexit`` hook, for an interpreter that exits without leaving the ``with`` block;
* death of qeval itself, even by SIGKILL. The direct child is a tiny guard (:data:`_GUARD`)
  that starts the engine in the same process group and kills the group when qeval dies:
  Linux's parent-death signal (``PR_SET_PDEATHSIG``) tells it at once, and it also polls its
  parent every 0.5 s (the signal fires when the *thread* that started it exits, and exists
  only on Linux). A parent-death signal on the engine itself would not do: vLLM's API server
  spawns its engine core (~2.5 GB) and a resource tracker, which a SIGKILLed API server
  orphans (measured).

The start-up fails with the log's tail in the error when the engine exits or is not healthy
in time, so a user sees the engine's own reason.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

from qeval.errors import QevalError

_PR_SET_PDEATHSIG = 1
_DEATH_SIGNAL = signal.SIGUSR1  # the guard's parent-death signal (SIGTERM is the polite stop)
_live: set[ManagedServer] = set()

# The server's direct child: ``python -c _GUARD PARENT_PID CMD...``. It runs CMD in its own
# process group; when its parent dies it SIGKILLs the group, grandchildren included. On SIGTERM
# (stop(), sent to the whole group) it waits for CMD to exit and exits with its code.
_GUARD = f"""
import os, signal, subprocess, sys, threading, time
parent = int(sys.argv[1])
def kill_group(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal({int(_DEATH_SIGNAL)}, kill_group)
if os.getppid() != parent:  # the parent died before the death signal was armed
    kill_group()
signal.signal(signal.SIGTERM, lambda *_: None)  # the group's SIGTERM is for the engine; stay to reap it
child = subprocess.Popen(sys.argv[2:])
def watch():
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            kill_group()
threading.Thread(target=watch, daemon=True).start()
sys.exit(child.wait())
"""


class ServerError(QevalError):
    """A managed server did not start, with the engine's log tail in the message."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class _PortTaken(ServerError):
    """The free port picked before the start was taken before the engine bound it."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


# Looked up here, not in the forked child: a child of a threaded parent must not dlopen.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """preexec_fn (in the child between fork and exec): arm the parent-death signal."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedServer:
    """``with ManagedServer(argv_for_port, health_url_for_port) as s: ...``.

    ``command(port)`` builds the engine's argv for a port; ``health(port)`` the URL that answers
    200 once it serves. With ``port=None`` a free loopback port is picked (and picked again if
    another process takes it before the engine binds it)."""

    def __init__(
        self,
        command: Any,
        health: Any,
        *,
        name: str = "server",
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 300.0,
        stop_grace_s: float = 20.0,
        log_path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        python: str | os.PathLike[str] | None = None,
        drop_env: Sequence[str] = ("PYTHONPATH", "VIRTUAL_ENV"),
    ) -> None:
        self._command = command
        self._health = health
        self.name = name
        self.host = host
        self._pick_port = port is None
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        if log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"qeval-{name}-", suffix=".log")
            os.close(fd)
            log_path = path
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.python = str(python or sys.executable)
        """The interpreter that runs the guard (any Python 3 will do)."""
        self.drop_env = tuple(drop_env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.startup_s: float | None = None
        """Spawn to healthy, seconds."""
        self._log_offset = 0
        self._tmpdir: str | None = None

    def command(self) -> list[str]:
        return [str(a) for a in self._command(self.port)]

    @property
    def health_url(self) -> str:
        return str(self._health(self.port))

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> ManagedServer:
        if self.proc is not None:
            raise ServerError(f"{self.name}: this server was already started")
        t0 = time.perf_counter()
        attempts = 3 if self._pick_port else 1
        for attempt in range(1, attempts + 1):
            self._spawn()
            try:
                self._wait_ready(t0)
            except _PortTaken:
                self.stop()
                if attempt == attempts:
                    raise
                self.port = free_port(self.host)
            except BaseException:
                self.stop()
                raise
            else:
                break
        self.startup_s = time.perf_counter() - t0
        return self

    def _spawn(self) -> None:
        env = {**os.environ, **self.env}
        for name in self.drop_env:  # the engine must not import qeval's packages by inheritance
            env.pop(name, None)
        # Engines leave files in TMPDIR (vLLM's gloo store): a folder of their own, removed by stop().
        self._tmpdir = tempfile.mkdtemp(prefix=f"qeval-{self.name}-")
        env["TMPDIR"] = self._tmpdir
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        guarded = [self.python, "-c", _GUARD, str(os.getpid()), *self.command()]
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(
                guarded, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self._tmpdir, start_new_session=True, preexec_fn=_die_with_parent,
            )
        self.pgid = self.proc.pid  # a new session's leader: its pid is the group id
        _live.add(self)

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        deadline = t0 + self.startup_timeout_s
        while True:
            rc = self.proc.poll()
            if rc is not None:
                tail = self.log_tail()
                if self._pick_port and "address already in use" in tail.lower():
                    raise _PortTaken(f"port {self.port} was taken before {self.name} bound it")
                raise ServerError(
                    f"{self.name} exited with code {rc} before it was ready ({time.perf_counter() - t0:.0f} s). "
                    f"Log {self.log_path}, last lines:\n{tail}", tail)
            try:
                with opener.open(self.health_url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.perf_counter() > deadline:
                tail = self.log_tail()
                raise ServerError(
                    f"{self.name} was not ready within {self.startup_timeout_s:.0f} s. "
                    f"Log {self.log_path}, last lines:\n{tail}", tail)
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after ``stop_grace_s``. Idempotent."""
        _live.discard(self)
        if self.proc is None or self.pgid is None:
            return
        pgid = self.pgid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader so the group can vanish
            if not group_alive(pgid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def alive(self) -> bool:
        return self.pgid is not None and group_alive(self.pgid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ManagedServer({self.name!r} on port {self.port}, pgid={self.pgid})"


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


__all__ = ["ManagedServer", "ServerError", "free_port", "group_alive"]
