"""Run untrusted, model-generated Python in a resource-limited subprocess.

This is containment against accidents (infinite loops, fork bombs, huge
allocations, runaway file writes), not a security boundary: the child runs as
the same user with network access. See docs/security.md for the hardened
sandbox that is planned.

Limits, applied in the child before ``exec`` (POSIX only): CPU seconds,
address space, file size, number of processes, and no core dumps. The child
runs ``python -I`` (isolated: no user site, no PYTHON* env vars) in a fresh
temporary directory with a minimal environment, in its own process group, and
the whole group is killed on the wall-clock timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Literal

try:  # imported here, not in the child after fork
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

SandboxStatus = Literal["ok", "error", "timeout"]

_MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    wall_s: float = 5.0
    """Wall-clock limit; the process group is killed after it."""
    cpu_s: int = 5
    """RLIMIT_CPU (the kernel kills the child after this much CPU time)."""
    memory_bytes: int = 512 * _MiB
    """RLIMIT_AS: address space; a larger allocation raises MemoryError."""
    file_bytes: int = 16 * _MiB
    """RLIMIT_FSIZE: largest file the child may write."""
    processes: int = 64
    """RLIMIT_NPROC above the user's current process count (per user, so it caps
    fork bombs but is not exact; the kernel does not enforce it for root)."""
    output_bytes: int = 64 * 1024
    """stdout/stderr kept per stream (the rest is dropped)."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed run."""

    status: SandboxStatus
    """``ok`` (exit 0), ``error`` (non-zero exit, e.g. MemoryError) or ``timeout``
    (wall clock or CPU-seconds limit)."""
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float


def _current_user_processes() -> int:
    try:
        uid = os.getuid()
        return sum(1 for p in os.listdir("/proc") if p.isdigit() and _owner(p) == uid)
    except OSError:
        return 1024


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def run_python(code: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``code`` as a script in a fresh limited subprocess; never raises on the code's behaviour."""
    limits = limits or SandboxLimits()
    # Count the user's processes here, in the parent: /proc walking after fork is unsafe.
    nproc_base = _current_user_processes() if os.name == "posix" else 0
    with tempfile.TemporaryDirectory(prefix="qeval-sandbox-") as tmp:
        script = os.path.join(tmp, "main.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(code)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        preexec = None
        if resource is not None:
            preexec = lambda: _limit_child(limits, nproc_base)  # noqa: E731
        out_path, err_path = os.path.join(tmp, "stdout.txt"), os.path.join(tmp, "stderr.txt")
        start = time.perf_counter()
        # Output goes to files, not pipes, so RLIMIT_FSIZE also caps a print loop.
        with open(out_path, "wb") as out_fh, open(err_path, "wb") as err_fh:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", script],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_fh,
                stderr=err_fh,
                preexec_fn=preexec,
                start_new_session=True,  # own process group, so a timeout kills every descendant
            )
            try:
                proc.wait(timeout=limits.wall_s)
                status: SandboxStatus = "ok" if proc.returncode == 0 else "error"
                if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                    status = "timeout"  # the CPU-seconds limit fired before the wall clock
            except subprocess.TimeoutExpired:
                status = "timeout"
            finally:
                _kill_group(proc)  # on timeout, and stray grandchildren of a finished child
                proc.wait()
        wall = time.perf_counter() - start
        out, err = _read_head(out_path, limits.output_bytes), _read_head(err_path, limits.output_bytes)
    return SandboxResult(
        status=status,
        returncode=proc.returncode,
        stdout=out,
        stderr=err,
        wall_s=wall,
    )


def _limit_child(limits: SandboxLimits, nproc_base: int) -> None:  # in the child, before exec
    def cap(which: int, value: int, slack: int = 0) -> None:
        try:
            _soft, hard = resource.getrlimit(which)
            new_hard = value + slack
            if hard != resource.RLIM_INFINITY:
                value, new_hard = min(value, hard), min(new_hard, hard)
            resource.setrlimit(which, (value, new_hard))
        except (ValueError, OSError):
            pass  # limit not supported here; the wall timeout still applies

    cap(resource.RLIMIT_CPU, int(limits.cpu_s), slack=1)  # SIGXCPU at the soft limit, SIGKILL 1 s later
    cap(resource.RLIMIT_AS, int(limits.memory_bytes))
    cap(resource.RLIMIT_FSIZE, int(limits.file_bytes))
    cap(resource.RLIMIT_CORE, 0)
    if hasattr(resource, "RLIMIT_NPROC"):
        cap(resource.RLIMIT_NPROC, nproc_base + int(limits.processes))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _read_head(path: str, limit: int) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")
