"""Run untrusted, model-generated Python in a resource-limited subprocess.

Every run gets (POSIX; see docs/security.md for what this does and does not
contain, as measured):

- ``python -I -B`` (isolated: no user site, no ``PYTHON*`` variables) in a fresh,
  empty temporary directory, with a scrubbed environment (``PATH``, ``HOME`` and
  ``TMPDIR`` = that directory, ``LANG``, ``PYTHONHASHSEED``; nothing else of the
  parent's, so no tokens or secrets pass through);
- its own session and process group, killed as a whole at the wall-clock timeout;
- resource limits set before ``exec``: CPU seconds, address space, file size,
  number of processes, open files, no core dumps;
- when running as root: a new network namespace (only a down loopback device, so
  no network) and a dedicated unprivileged uid/gid per run (so ``RLIMIT_NPROC`` is
  exact, the code cannot signal the harness or other runs, cannot read root-only
  files or write outside world-writable places, and every process it left
  behind, even ones that left the process group, is killed by uid afterwards);
  what could not be applied is recorded in :attr:`SandboxResult.isolation`;
- capped stdout/stderr (written to files, so ``RLIMIT_FSIZE`` caps a print loop);
- an optional *verdict channel*: a per-run random nonce handed to the child on an
  inherited pipe (read once, never written to disk or argv) and a write-only
  file descriptor to a file outside the sandbox directory. A harness program
  reads the nonce first, and writes ``nonce + payload`` when it has finished;
  :attr:`SandboxResult.verdict` is the payload of the last line that carries the
  nonce, so nothing printed on stdout counts.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

try:  # imported here, not in the child after fork
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

SandboxStatus = Literal["ok", "error", "timeout", "crashed", "resource_limit", "sandbox_error"]

_MiB = 1024 * 1024
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_UID_BASE = 2_000_000  # per-run uids (no passwd entry needed), far above ordinary ones
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run."""

    wall_s: float = 5.0
    """Wall-clock limit; the process group (and, as root, every process of the run's uid) is killed after it."""
    cpu_s: int = 5
    """RLIMIT_CPU (SIGXCPU at the limit, SIGKILL one second later)."""
    memory_bytes: int = 512 * _MiB
    """RLIMIT_AS: address space; a larger allocation raises MemoryError."""
    file_bytes: int = 16 * _MiB
    """RLIMIT_FSIZE: largest file the child may write (SIGXFSZ / EFBIG beyond)."""
    processes: int = 64
    """RLIMIT_NPROC. As root the run has its own uid, so this is exact; otherwise it is
    added to the user's current process count (the kernel ignores it for root)."""
    open_files: int = 64
    """RLIMIT_NOFILE."""
    output_bytes: int = 64 * 1024
    """stdout/stderr kept per stream (the rest is dropped)."""
    network: bool = False
    """Allow network access (skip the new network namespace)."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed run."""

    status: SandboxStatus
    """``ok`` (exit 0), ``error`` (non-zero exit, e.g. an uncaught exception),
    ``timeout`` (wall clock), ``crashed`` (killed by a signal), ``resource_limit``
    (CPU-seconds or file-size limit signal), ``sandbox_error`` (the sandbox itself
    failed to start the run)."""
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    signal: int | None = None
    """The signal that ended the child, if any."""
    verdict: str | None = None
    """With ``verdict_channel``: the payload of the last nonce-authenticated record, else ``None``."""
    isolation: dict[str, Any] = field(default_factory=dict)
    """What was applied: ``network`` ("isolated" or "not isolated (reason)"), ``uid``
    (the run's uid, or "not dropped (reason)")."""


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


def _libc_unshare() -> Callable[[int], None] | None:
    os_unshare = getattr(os, "unshare", None)  # Python 3.12+
    if os_unshare is not None:
        return lambda flags: os_unshare(flags)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.unshare
    except (OSError, AttributeError):
        return None

    def unshare(flags: int) -> None:
        if fn(flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return unshare


_UNSHARE = _libc_unshare() if sys.platform.startswith("linux") else None


def _network_probe(flags: int) -> str:
    """Whether a child can get its own network namespace here with ``flags`` (checked once per flags)."""
    if flags not in _NET_STATE:
        if _UNSHARE is None:
            _NET_STATE[flags] = "not isolated (unshare not available on this platform)"
        else:
            try:
                r = subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], preexec_fn=lambda: _UNSHARE(flags),
                                   check=False,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
                _NET_STATE[flags] = "isolated" if r.returncode == 0 else f"not isolated (probe exited {r.returncode})"
            except (OSError, subprocess.SubprocessError) as exc:
                why = "unshare(CLONE_NEWNET)" if flags == _CLONE_NEWNET else "unshare(CLONE_NEWUSER | CLONE_NEWNET)"
                _NET_STATE[flags] = f"not isolated ({why} failed: {exc})"
    return _NET_STATE[flags]


_NET_STATE: dict[int, str] = {}


def _next_uid() -> int:
    with _uid_lock:
        n = next(_uid_counter)
    return _UID_BASE + (os.getpid() % 4096) * 1024 + n % 1024


def _world_executable(path: str) -> bool:
    """Whether a user with no privileges and no group can run ``path`` (every directory searchable)."""
    import stat

    real = os.path.realpath(path)
    try:
        if not os.stat(real).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(real)
        while True:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
            if d == os.path.dirname(d):
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def _unprivileged_python() -> str | None:
    """An interpreter an unprivileged uid can run: this one, else a system python3 (same version first)."""
    if _world_executable(sys.executable):
        return sys.executable
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for cand in (f"/usr/bin/{ver}", f"/usr/local/bin/{ver}", "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand) and _world_executable(cand):
            return cand
    return None


def run_python(code: str, limits: SandboxLimits | None = None, *, verdict_channel: bool = False) -> SandboxResult:
    """Run ``code`` as a script in a fresh limited subprocess; never raises on the code's behaviour.

    With ``verdict_channel`` the script gets ``sys.argv[1:] == [nonce_read_fd, verdict_write_fd]``
    (see the module docstring); the harness's runner, not the generated code, uses them.
    """
    limits = limits or SandboxLimits()
    posix = os.name == "posix" and resource is not None
    root = posix and os.geteuid() == 0
    python = sys.executable
    uid: int | None = None
    if root:
        unpriv = _unprivileged_python()
        if unpriv is None:
            isolation: dict[str, Any] = {"uid": "not dropped (no Python interpreter an unprivileged uid can run)"}
        else:
            python, uid = unpriv, _next_uid()
            isolation = {"uid": uid}
    else:
        isolation = {"uid": "not dropped (not running as root)"}
    isolation["python"] = python
    unshare_flags = 0
    if limits.network:
        isolation["network"] = "not isolated (allowed by the limits)"
    elif not posix:
        isolation["network"] = "not isolated (not a POSIX system)"
    else:
        # root: a plain network namespace; otherwise an unprivileged user namespace with one, where the kernel allows
        flags = _CLONE_NEWNET if root else _CLONE_NEWUSER | _CLONE_NEWNET
        isolation["network"] = _network_probe(flags)
        if isolation["network"] == "isolated":
            unshare_flags = flags
    # Count the user's processes here, in the parent: /proc walking after fork is unsafe.
    nproc_base = 0 if (root or not posix) else _current_user_processes()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qeval-sandbox-") as tmp, \
            tempfile.TemporaryDirectory(prefix="qeval-harness-") as private:
        # tmp: the child's empty working directory. private: harness-only files (output, verdict).
        script = os.path.join(tmp, "main.py")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(code)
        if uid is not None:
            os.chown(tmp, uid, uid)
            os.chmod(tmp, 0o700)
            os.chown(script, uid, uid)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        out_path, err_path = os.path.join(private, "stdout.txt"), os.path.join(private, "stderr.txt")
        verdict_path = os.path.join(private, "verdict.txt")
        argv = [python, "-I", "-B", script]
        pass_fds: tuple[int, ...] = ()
        nonce = None
        nonce_r = verdict_fd = -1
        if verdict_channel:
            import secrets

            nonce = secrets.token_hex(16)
            nonce_r, nonce_w = os.pipe()
            os.write(nonce_w, nonce.encode() + b"\n")
            os.close(nonce_w)
            verdict_fd = os.open(verdict_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            pass_fds = (nonce_r, verdict_fd)
            argv += [str(nonce_r), str(verdict_fd)]
        preexec = None
        if posix:
            preexec = lambda: _limit_child(limits, nproc_base, uid, unshare_flags)
        status: SandboxStatus
        proc = None
        try:
            # Output goes to files, not pipes, so RLIMIT_FSIZE also caps a print loop.
            with open(out_path, "wb") as out_fh, open(err_path, "wb") as err_fh:
                try:
                    proc = subprocess.Popen(
                        argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out_fh, stderr=err_fh,
                        preexec_fn=preexec, pass_fds=pass_fds,  # noqa: PLW1509 - only async-signal-safe-enough calls
                        start_new_session=True,  # own session and process group: a timeout kills every descendant
                    )
                except (OSError, subprocess.SubprocessError) as exc:
                    return SandboxResult("sandbox_error", None, "", f"sandbox could not start the run: {exc}",
                                         time.perf_counter() - start, isolation=isolation)
                finally:
                    for fd in (nonce_r, verdict_fd):
                        if fd >= 0:
                            os.close(fd)
                try:
                    rc, cpu = _wait(proc, start + limits.wall_s)
                    if rc == 0:
                        status = "ok"
                    elif rc in (-signal.SIGXCPU, -signal.SIGXFSZ):
                        status = "resource_limit"
                    elif rc == -signal.SIGKILL and cpu >= limits.cpu_s - 0.05:
                        status = "resource_limit"  # the CPU hard limit (soft + 1 s) kills with SIGKILL
                    elif rc < 0:
                        status = "crashed"
                    else:
                        status = "error"
                except subprocess.TimeoutExpired:
                    status = "timeout"
                finally:
                    _kill_group(proc)  # on timeout, and stray grandchildren of a finished child
                    proc.wait()
                    if uid is not None:
                        _kill_uid(uid)  # descendants that left the process group (setsid, double fork)
            wall = time.perf_counter() - start
            out, err = _read_head(out_path, limits.output_bytes), _read_head(err_path, limits.output_bytes)
            verdict = _read_verdict(verdict_path, nonce) if nonce is not None else None
        finally:
            if uid is not None:
                _remove_owned(uid)
    rc = proc.returncode
    return SandboxResult(status=status, returncode=rc, stdout=out, stderr=err, wall_s=wall,
                         signal=-rc if rc is not None and rc < 0 else None, verdict=verdict, isolation=isolation)


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, float]:
    """Reap the child by the deadline: (return code, CPU seconds it used); raises TimeoutExpired."""
    if not hasattr(os, "wait4"):  # pragma: no cover - not POSIX
        proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
        return proc.returncode, 0.0
    delay = 0.002
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.perf_counter() >= deadline:
            raise subprocess.TimeoutExpired(proc.args, deadline)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _limit_child(limits: SandboxLimits, nproc_base: int, uid: int | None, unshare_flags: int) -> None:
    # In the child, after fork and before exec. Order: namespace (needs privilege), limits, then drop privileges.
    if unshare_flags and _UNSHARE is not None:
        _UNSHARE(unshare_flags)  # raises: the run fails to start (sandbox_error) rather than running with network

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
    cap(resource.RLIMIT_NOFILE, int(limits.open_files))
    if hasattr(resource, "RLIMIT_NPROC"):
        cap(resource.RLIMIT_NPROC, nproc_base + int(limits.processes))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (kill(-1) from a helper running as that uid is atomic)."""
    helper = "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n"
    for _ in range(2):
        try:
            subprocess.run([_unprivileged_python() or sys.executable, "-I", "-S", "-c", helper], user=uid, group=uid, extra_groups=[],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30, start_new_session=True, check=False)
        except (OSError, subprocess.SubprocessError):
            pass


def _remove_owned(uid: int) -> None:
    """Delete what the run's uid left in the shared scratch directories (/tmp, /var/tmp, /dev/shm)."""
    import shutil

    for base in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _read_verdict(path: str, nonce: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(4 * _MiB)
    except OSError:
        return None
    found = None
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.startswith(nonce):
            found = line[len(nonce):]
    return found


def _read_head(path: str, limit: int) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")
