"""Start, limit, wait for and clean up after one sandboxed process (the parts :mod:`qeval.sandbox` shares).

What is applied and why is in :mod:`qeval.sandbox` and docs/security.md. Everything
here runs in the harness, or in a child between ``fork`` and ``exec``.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

try:  # imported here, not in the child after fork
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from qeval.sandbox import SandboxLimits, SandboxStatus

MiB = 1024 * 1024
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
UID_BASE = 2_000_000  # per-run uids (no passwd entry needed), far above ordinary ones
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """How the processes of one run are isolated, decided in the harness before any starts."""

    python: str
    """The interpreter the processes run (one the unprivileged uids can execute)."""
    uids: tuple[int | None, ...]
    """One per process: its own uid, or ``None`` when it runs as the harness's user."""
    unshare_flags: int
    nproc_base: int
    isolation: dict[str, Any]
    """What was applied, for :attr:`qeval.sandbox.SandboxResult.isolation`: ``uid``, ``python``, ``network``."""


def plan(limits: SandboxLimits, processes: int = 1) -> Plan:
    """Decide uid, interpreter and network isolation for ``processes`` processes of one run."""
    posix = os.name == "posix" and resource is not None
    root = posix and os.geteuid() == 0
    python = sys.executable
    uids: tuple[int | None, ...] = (None,) * processes
    if root:
        unpriv = _unprivileged_python()
        if unpriv is None:
            isolation: dict[str, Any] = {"uid": "not dropped (no Python interpreter an unprivileged uid can run)"}
        else:
            python, uids = unpriv, tuple(_next_uid() for _ in range(processes))
            isolation = {"uid": uids[0]}
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
    return Plan(python, uids, unshare_flags, nproc_base, isolation)


def own_dir(path: str, uid: int | None) -> None:
    """Hand the run's directory (and what is in it) to ``uid``, readable by nobody else."""
    if uid is None:
        return
    for name in os.listdir(path):
        os.chown(os.path.join(path, name), uid, uid)
    os.chown(path, uid, uid)
    os.chmod(path, 0o700)


def spawn(argv: list[str], cwd: str, out: IO[bytes], err: IO[bytes], limits: SandboxLimits, run: Plan,
          uid: int | None, pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``cwd`` with the scrubbed environment, the limits, ``uid`` and the network plan."""
    env = {"PATH": "/usr/bin:/bin", "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    preexec = None
    if os.name == "posix" and resource is not None:
        preexec = lambda: _limit_child(limits, run.nproc_base, uid, run.unshare_flags)  # noqa: E731
    return subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        preexec_fn=preexec, pass_fds=tuple(pass_fds),  # noqa: PLW1509 - only async-signal-safe-enough calls
        start_new_session=True,  # own session and process group: a timeout kills every descendant
    )


def wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int, float]:
    """Reap the child by the deadline: (return code, CPU seconds it used); raises TimeoutExpired."""
    if not hasattr(os, "wait4"):  # pragma: no cover - not POSIX
        proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
        return proc.returncode, 0.0
    import select

    try:  # a pidfd becomes readable when the child exits: no polling delay (Linux 5.3+)
        pidfd: int | None = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        pidfd = None
    delay = 0.002
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return proc.returncode, usage.ru_utime + usage.ru_stime
            left = deadline - time.perf_counter()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, deadline)
            if pidfd is not None:
                select.select([pidfd], [], [], min(left, 0.5))
            else:
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def status(returncode: int, cpu_s: float, limits: SandboxLimits) -> SandboxStatus:
    """A finished child's status from its return code and the CPU seconds it used."""
    if returncode == 0:
        return "ok"
    if returncode in (-signal.SIGXCPU, -signal.SIGXFSZ):
        return "resource_limit"
    if returncode == -signal.SIGKILL and cpu_s >= limits.cpu_s - 0.05:
        return "resource_limit"  # the CPU hard limit (soft + 1 s) kills with SIGKILL
    return "crashed" if returncode < 0 else "error"


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


_KILL_UIDS = """\
import os, sys
for uid in map(int, sys.argv[1:]):
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(2):  # a second sweep for children forked while the first one ran
                os.kill(-1, 9)  # SIGKILL (no signal import: it pulls in enum)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
"""


def kill_uids(uids: Sequence[int]) -> None:
    """SIGKILL every process of each uid: kill(-1) from a process running as that uid is atomic.

    One root helper forks a child per uid (one interpreter start for the whole run, not two per uid).
    """
    if not uids:
        return
    try:
        subprocess.run([_unprivileged_python() or sys.executable, "-I", "-S", "-c", _KILL_UIDS, *map(str, uids)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30, start_new_session=True, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def remove_owned(uids: Sequence[int]) -> None:
    """Delete what the run's uids left in the shared scratch directories (/tmp, /var/tmp, /dev/shm)."""
    import shutil

    owners = set(uids)
    if not owners:
        return
    for base in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid not in owners:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def read_head(path: str, limit: int) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")


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
_NET_STATE: dict[int, str] = {}


def _network_probe(flags: int) -> str:
    """Whether a child can get its own network namespace here with ``flags`` (checked once per flags)."""
    if flags not in _NET_STATE:
        if _UNSHARE is None:
            _NET_STATE[flags] = "not isolated (unshare not available on this platform)"
        else:
            unshare = _UNSHARE
            try:
                r = subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], preexec_fn=lambda: unshare(flags),
                                   check=False,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
                _NET_STATE[flags] = "isolated" if r.returncode == 0 else f"not isolated (probe exited {r.returncode})"
            except (OSError, subprocess.SubprocessError) as exc:
                why = "unshare(CLONE_NEWNET)" if flags == _CLONE_NEWNET else "unshare(CLONE_NEWUSER | CLONE_NEWNET)"
                _NET_STATE[flags] = f"not isolated ({why} failed: {exc})"
    return _NET_STATE[flags]


def _next_uid() -> int:
    with _uid_lock:
        n = next(_uid_counter)
    return UID_BASE + (os.getpid() % 4096) * 1024 + n % 1024


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
