"""A real vLLM server (CPU build) for tests: started once, always stopped.

vLLM pins its own torch and transformers, so it lives in its own virtualenv,
``.venv-vllm`` beside qeval's ``.venv`` (``make .venv-vllm/.vllm-installed``; ``make test``
builds it). Its ``vllm`` console script fails there ("No package metadata was found for
vllm"), so the server is started as ``python -m vllm.entrypoints.openai.api_server``.

``VllmServer`` serves an HF model folder greedy and in fp32 (bf16 drifts from the HF
in-process fp32 output) with ``--enforce-eager`` (no torch.compile / graph capture: ready in
~25-35 s on 2 cores instead of minutes), 1 GiB of KV cache (~3.2 GB RSS in all; ~6.2 GB at
4 GiB). ``QEVAL_VLLM_VENV`` points at another venv. The server runs in its own process group
and is stopped on every exit path:

* ``__exit__`` / ``stop()``: SIGTERM to the group, SIGKILL after a grace period;
* an ``atexit`` hook, for an interpreter that exits without leaving the ``with`` block;
* parent death (Linux ``PR_SET_PDEATHSIG``): a killed pytest, even by SIGKILL, leaves no
  server behind. The signal only reaches the *direct* child, and vLLM's API server spawns
  its engine core (``VLLM::EngineCore``, ~2.5 GB) and a multiprocessing resource tracker;
  a SIGKILLed API server orphans both (measured). So the direct child is a tiny guard
  (:data:`_GUARD`) that runs vLLM in the same process group and, on its parent-death
  signal, SIGKILLs the whole group.
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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_VENV = Path(os.environ.get("QEVAL_VLLM_VENV") or REPO_ROOT / ".venv-vllm")
VLLM_STAMP_NAME = ".vllm-installed"  # written by the Makefile once the venv imports vLLM
SERVED_MODEL_NAME = "smollm2-135m"

# Environment for the server: lean and quiet on a small CPU machine.
SERVER_ENV: dict[str, str] = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache (23k tokens): 135M model, short prompts
    # The engine core runs its model worker in-process: one process fewer, ~0.7 GB less RSS.
    # (The API server still spawns the engine core as a child process.)
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",  # no hub here: never try to reach it
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}

# Arguments beyond model, host and port. Greedy fp32, eager: see the module docstring.
SERVER_ARGS: tuple[str, ...] = (
    "--dtype", "float32",
    "--enforce-eager",
    "--max-model-len", "2048",
    "--max-num-seqs", "8",
    "--seed", "0",
    "--disable-log-stats",
)

_PR_SET_PDEATHSIG = 1
_DEATH_SIGNAL = signal.SIGUSR1  # the guard's parent-death signal (SIGTERM is the polite stop)
_live: set[VllmServer] = set()

# The server's direct child: ``python -c _GUARD PARENT_PID CMD...``. It runs CMD in its own
# process group; when its parent dies (the kernel sends _DEATH_SIGNAL, set by preexec_fn and
# kept across exec) it SIGKILLs the group, grandchildren included. On SIGTERM (stop(), sent to
# the whole group) it waits for CMD to exit and exits with its code.
_GUARD = f"""
import os, signal, subprocess, sys
def kill_group(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal({int(_DEATH_SIGNAL)}, kill_group)
if os.getppid() != int(sys.argv[1]):  # the parent died before the death signal was armed
    kill_group()
signal.signal(signal.SIGTERM, lambda *_: None)  # the group's SIGTERM is for vLLM; stay to reap it
child = subprocess.Popen(sys.argv[2:])
sys.exit(child.wait())
"""


def vllm_python(venv: Path = VLLM_VENV) -> Path:
    return venv / "bin" / "python"


def vllm_installed(venv: Path = VLLM_VENV) -> bool:
    """True when the Makefile finished installing vLLM into ``venv``."""
    return vllm_python(venv).exists() and (venv / VLLM_STAMP_NAME).exists()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# Looked up here, not in the forked child: a child of a threaded parent must not dlopen.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """preexec_fn (runs in the child between fork and exec): arm the parent-death signal.

    The kernel sends it when the *thread* that started the server exits: start servers
    from the main thread (pytest fixtures are)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (cannot happen for our own group)
        return True
    return True


class VllmServerError(RuntimeError):
    pass


class _PortTaken(VllmServerError):
    """The free port picked before the start was taken before vLLM bound it."""


class VllmServer:
    """``with VllmServer(model_dir) as server: httpx.get(server.base_url + "/models")``."""

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        served_model_name: str = SERVED_MODEL_NAME,
        venv: str | os.PathLike = VLLM_VENV,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 300.0,
        stop_grace_s: float = 20.0,
        log_path: str | os.PathLike | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.served_model_name = served_model_name
        self.venv = Path(venv)
        self.host = host
        self._pick_port = port is None
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"vllm-{self.port}-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.startup_s: float | None = None
        self._log_offset = 0  # where this attempt's output starts in the log
        self._tmpdir: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        return [
            str(vllm_python(self.venv)), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(self.port),
            *SERVER_ARGS, *self.extra_args,
        ]

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> VllmServer:
        if self.proc is not None:
            raise VllmServerError("this VllmServer was already started")
        if not vllm_python(self.venv).exists():
            raise VllmServerError(f"{vllm_python(self.venv)} is missing: run make .venv-vllm/.vllm-installed")
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
                self.port = free_port(self.host)  # lost the race for the port: pick another
            except BaseException:
                self.stop()
                raise
            else:
                break
        self.startup_s = time.perf_counter() - t0
        return self

    def _spawn(self) -> None:
        env = {**os.environ, **SERVER_ENV, **self.env}
        # The server must not import qeval's venv packages through an inherited PYTHONPATH.
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        # vLLM leaves a /tmp/vllm_dist_* file (its gloo file store) per start: give it a
        # temporary folder of its own, removed by stop().
        self._tmpdir = tempfile.mkdtemp(prefix="qeval-vllm-")
        env["TMPDIR"] = self._tmpdir
        guarded = [str(vllm_python(self.venv)), "-c", _GUARD, str(os.getpid()), *self.command()]
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(
                guarded,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self._tmpdir,
                start_new_session=True,  # own process group: stop() signals all of it
                preexec_fn=_die_with_parent,
            )
        self.pgid = self.proc.pid  # a new session's leader: its pid is the group id
        _live.add(self)

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        url = f"{self.base_url}/models"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        deadline = t0 + self.startup_timeout_s
        while True:
            rc = self.proc.poll()
            if rc is not None:
                if self._pick_port and "Address already in use" in self.log_tail():
                    raise _PortTaken(f"port {self.port} was taken before vLLM bound it")
                raise VllmServerError(
                    f"vLLM exited with code {rc} before it was ready "
                    f"({time.perf_counter() - t0:.0f} s). Log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with opener.open(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.perf_counter() > deadline:
                raise VllmServerError(
                    f"vLLM was not ready within {self.startup_timeout_s:.0f} s. Log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.5)

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
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while _group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def alive(self) -> bool:
        return self.pgid is not None and _group_alive(self.pgid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VllmServer({self.served_model_name!r} at {self.base_url}, pgid={self.pgid})"


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()
