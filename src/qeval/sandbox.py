"""Run untrusted, model-generated Python in resource-limited subprocesses.

Two ways to run it:

- :func:`run_python`: a script in one sandboxed process; its exit status and capped output.
- :func:`run_judged`: a *judged run* of a solution against trusted tests. The solution runs
  in one sandboxed process, the tests in another, the *judge*, which calls the
  solution's functions over a socket and compares the plain values it decodes itself
  (:mod:`qeval._sandbox_wire`). The solution's process shares nothing with the judge
  or the harness (another uid, no memory, no file descriptor but its end of that
  socket), so no code in it can write, reach or forge the verdict; the worst it can do
  is answer calls wrongly, fail to answer, or die.

Every process gets (POSIX; see docs/security.md for what this does and does not
contain, as measured):

- ``python -I -B`` (isolated: no user site, no ``PYTHON*`` variables) in a fresh,
  empty temporary directory, with a scrubbed environment (``PATH``, ``HOME`` and
  ``TMPDIR`` = that directory, ``LANG``, ``PYTHONHASHSEED``; nothing else of the
  parent's, so no tokens or secrets pass through);
- its own session and process group, killed as a whole at the wall-clock timeout;
- resource limits set before ``exec``: CPU seconds, address space, file size,
  number of processes, open files, no core dumps;
- when running as root: a new network namespace (only a down loopback device, so
  no network) and a dedicated unprivileged uid/gid per process (so ``RLIMIT_NPROC``
  is exact, the code cannot signal the harness, the judge or other runs, cannot read
  root-only files or write outside world-writable places, and every process it left
  behind, even ones that left the process group, is killed by uid afterwards);
  what could not be applied is recorded in :attr:`SandboxResult.isolation`;
- capped stdout/stderr (written to files, so ``RLIMIT_FSIZE`` caps a print loop).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qeval import _sandbox_process as _proc

SandboxStatus = Literal["ok", "error", "timeout", "crashed", "resource_limit", "sandbox_error"]

_UID_BASE = _proc.UID_BASE
_MiB = _proc.MiB


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run (each process of a judged run gets them)."""

    wall_s: float = 5.0
    """Wall-clock limit of the whole run; its process groups (and, as root, every process of its uids) are killed after it."""
    cpu_s: int = 5
    """RLIMIT_CPU (SIGXCPU at the limit, SIGKILL one second later)."""
    memory_bytes: int = 512 * _MiB
    """RLIMIT_AS: address space; a larger allocation raises MemoryError."""
    file_bytes: int = 16 * _MiB
    """RLIMIT_FSIZE: largest file the child may write (SIGXFSZ / EFBIG beyond)."""
    processes: int = 64
    """RLIMIT_NPROC. As root each process has its own uid, so this is exact; otherwise it is
    added to the user's current process count (the kernel ignores it for root)."""
    open_files: int = 64
    """RLIMIT_NOFILE."""
    output_bytes: int = 64 * 1024
    """stdout/stderr kept per stream (the rest is dropped)."""
    network: bool = False
    """Allow network access (skip the new network namespace)."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed process."""

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
    isolation: dict[str, Any] = field(default_factory=dict)
    """What was applied: ``network`` ("isolated" or "not isolated (reason)"), ``uid``
    (the run's uid, or "not dropped (reason)"), ``python``; a judged run adds ``judge_uid``."""


@dataclass(frozen=True)
class JudgeJob:
    """The trusted half of a judged run: the suite's tests, which run in the judge's process."""

    entry_point: str
    """The solution's function the tests call (a proxy of that name is bound in the tests' namespace)."""
    tests: tuple[str, ...]
    """Test statements, each run separately (one result each)."""
    setup: str = ""
    """Source run before the tests (HumanEval's ``check`` definition, MBPP's ``test_setup_code``)."""
    prefix: str = ""
    """The prompt the solution continues; its helpers (not its stub of ``entry_point``) serve the tests."""


@dataclass(frozen=True)
class JudgedRun:
    """What happened to a judged run."""

    record: dict[str, Any] | None
    """The judge's record (``{"stage": "define" | "setup", "error": ...}`` or ``{"stage": "tests",
    "results": [None | "Type: message", ...]}``), ``None`` when the judge sent none."""
    solution: SandboxResult
    """The solution's process (its ``isolation`` describes the run)."""
    judge: SandboxResult
    """The judge's process."""


def run_python(code: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``code`` as a script in a fresh limited subprocess; never raises on the code's behaviour."""
    limits = limits or SandboxLimits()
    run = _proc.plan(limits)
    uid = run.uids[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qeval-sandbox-") as tmp, \
            tempfile.TemporaryDirectory(prefix="qeval-harness-") as private:
        # tmp: the child's empty working directory. private: harness-only files (its output).
        script = os.path.join(tmp, "main.py")
        Path(script).write_text(code, encoding="utf-8")
        _proc.own_dir(tmp, uid)
        out_path, err_path = os.path.join(private, "stdout.txt"), os.path.join(private, "stderr.txt")
        try:
            # Output goes to files, not pipes, so RLIMIT_FSIZE also caps a print loop.
            with open(out_path, "wb") as out_fh, open(err_path, "wb") as err_fh:
                try:
                    proc = _proc.spawn([run.python, "-I", "-B", script], tmp, out_fh, err_fh, limits, run, uid)
                except (OSError, subprocess.SubprocessError) as exc:
                    return _not_started(exc, start, run.isolation)
                try:
                    status = _finish(proc, start + limits.wall_s, limits)
                finally:
                    _proc.kill_group(proc)  # on timeout, and stray grandchildren of a finished child
                    proc.wait()
                    _proc.kill_uids(_dropped(run))  # descendants that left the process group (setsid, double fork)
            return _result(status, proc, out_path, err_path, time.perf_counter() - start, limits, run.isolation)
        finally:
            _proc.remove_owned(_dropped(run))


def run_judged(solution: str, job: JudgeJob, limits: SandboxLimits | None = None) -> JudgedRun:
    """Run ``job``'s tests in a judge process against ``solution`` in a sandboxed process of its own.

    Both processes are sandboxed with ``limits`` (the wall clock covers the whole run). The
    judge reads the job over a socket only it and the harness hold, calls the solution over
    another, and sends its record back; see :mod:`qeval._sandbox_judge` and
    :mod:`qeval._sandbox_solution` for the protocol. Never raises on the solution's behaviour.
    """
    limits = limits or SandboxLimits()
    run = _proc.plan(limits, processes=2)
    solution_uid, judge_uid = run.uids
    isolation = {**run.isolation, "judge_uid": run.isolation["uid"] if judge_uid is None else judge_uid}
    start = time.perf_counter()
    deadline = start + limits.wall_s
    with tempfile.TemporaryDirectory(prefix="qeval-sandbox-") as tmp, \
            tempfile.TemporaryDirectory(prefix="qeval-judge-") as judge_dir, \
            tempfile.TemporaryDirectory(prefix="qeval-harness-") as private:
        script = os.path.join(tmp, "main.py")
        Path(script).write_text(_solution_script(solution), encoding="utf-8")
        _proc.own_dir(tmp, solution_uid)
        _proc.own_dir(judge_dir, judge_uid)
        paths = [os.path.join(private, name) for name in ("solution.out", "solution.err", "judge.out", "judge.err")]
        harness_end, judge_end = socket.socketpair()  # the job in, the record out; the solution never holds either
        judge_calls, solution_end = socket.socketpair()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with open(paths[0], "wb") as s_out, open(paths[1], "wb") as s_err, \
                    open(paths[2], "wb") as j_out, open(paths[3], "wb") as j_err:
                try:  # the solution first: its start (site, then the solution) is the longer path
                    procs.append(_proc.spawn([run.python, "-I", "-B", script, str(solution_end.fileno())],
                                             tmp, s_out, s_err, limits, run, solution_uid, (solution_end.fileno(),)))
                    judge_fds = (judge_end.fileno(), judge_calls.fileno())
                    procs.append(_proc.spawn([run.python, "-I", "-S", "-B", "-c", _JUDGE_BOOT, *map(str, judge_fds)],
                                             judge_dir, j_out, j_err, limits, run, judge_uid, judge_fds))
                except (OSError, subprocess.SubprocessError) as exc:
                    failed = _not_started(exc, start, isolation)
                    return JudgedRun(None, failed, failed)
                finally:
                    for end in (judge_end, judge_calls, solution_end):
                        end.close()
                sol, judge = procs
                record = _exchange(harness_end, _judge_payload(job), deadline)
                judge_status = _finish(judge, deadline, limits)
                solution_status = _finish(sol, deadline, limits)  # it exits once the judge hangs up
        finally:
            harness_end.close()
            for proc in procs:
                _proc.kill_group(proc)
                proc.wait()
            _proc.kill_uids(_dropped(run))
            _proc.remove_owned(_dropped(run))
        wall = time.perf_counter() - start
        return JudgedRun(record,
                         solution=_result(solution_status, sol, paths[0], paths[1], wall, limits, isolation),
                         judge=_result(judge_status, judge, paths[2], paths[3], wall, limits, isolation))


def _dropped(run: _proc.Plan) -> list[int]:
    return [uid for uid in run.uids if uid is not None]


def _finish(proc: subprocess.Popen[bytes], deadline: float, limits: SandboxLimits) -> SandboxStatus:
    try:
        rc, cpu = _proc.wait(proc, deadline)
    except subprocess.TimeoutExpired:
        return "timeout"
    return _proc.status(rc, cpu, limits)


def _not_started(exc: BaseException, start: float, isolation: dict[str, Any]) -> SandboxResult:
    return SandboxResult("sandbox_error", None, "", f"sandbox could not start the run: {exc}",
                         time.perf_counter() - start, isolation=isolation)


def _result(status: SandboxStatus, proc: subprocess.Popen[bytes], out_path: str, err_path: str, wall: float,
            limits: SandboxLimits, isolation: dict[str, Any]) -> SandboxResult:
    rc = proc.returncode
    return SandboxResult(status=status, returncode=rc, stdout=_proc.read_head(out_path, limits.output_bytes),
                         stderr=_proc.read_head(err_path, limits.output_bytes), wall_s=wall,
                         signal=-rc if rc is not None and rc < 0 else None, isolation=isolation)


def _exchange(sock: socket.socket, payload: bytes, deadline: float) -> dict[str, Any] | None:
    """Send the judge its job, then read its record until it hangs up (``None``: none by the deadline)."""
    chunks: list[bytes] = []
    size = 0
    try:
        sock.settimeout(max(0.001, deadline - time.perf_counter()))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        while True:
            sock.settimeout(max(0.001, deadline - time.perf_counter()))
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            if size > 16 * _MiB:
                return None
            chunks.append(chunk)
    except OSError:  # the judge died before reading its job, or the deadline passed
        return None
    try:
        record = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


# --- the programs the two processes run ------------------------------------------------------------
# Each process runs a system Python that may not see this package, so the modules it needs travel as
# source, read once here (before any run, so nothing a run does to the files changes later runs' judges).

_LOADER = '''\
import sys, types
def _qeval_load(sources):
    package = types.ModuleType("qeval")
    package.__path__ = []
    sys.modules["qeval"] = package
    for name, source in sources:
        module = types.ModuleType(name)
        sys.modules[name] = module
        setattr(package, name.rpartition(".")[2], module)
        exec(compile(source, "<" + name + ">", "exec", dont_inherit=True), module.__dict__)
    return module
'''

_JUDGE_BOOT = _LOADER + '''\
import json, os
def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
_fds = [int(a) for a in sys.argv[1:]]
del sys.argv[1:]
_payload = json.loads(_read_all(_fds[0]))
_qeval_load(_payload["sources"]).main(_payload["job"], *_fds)
'''


def _source(module: str) -> tuple[str, str]:
    return f"qeval.{module}", (Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8")


_JUDGE_SOURCES = [_source("_sandbox_wire"), _source("_sandbox_judge")]
_SOLUTION_SOURCES = [_source("_sandbox_wire"), _source("_sandbox_solution")]


def _judge_payload(job: JudgeJob) -> bytes:
    spec = {"entry_point": job.entry_point, "tests": list(job.tests), "setup": job.setup, "prefix": job.prefix}
    return json.dumps({"sources": _JUDGE_SOURCES, "job": spec}).encode()


def _solution_script(code: str) -> str:
    return _LOADER + f"_fd = int(sys.argv[1])\ndel sys.argv[1:]\n_qeval_load({_SOLUTION_SOURCES!r}).main({code!r}, _fd)\n"
