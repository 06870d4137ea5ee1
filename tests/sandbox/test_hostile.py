"""The hostile-code corpus (tests/sandbox/hostile/*.py) against the code_exec scorer's sandbox.

Each program is a "completion" defining ``solve`` for the tests ``solve(1) == 2``,
``solve(2) == 3`` and a HumanEval-style ``check(solve)`` (which checks through
``all(map(...))``); it would be scored passed only if its attack worked (or its
fake pass fooled the judge). Its docstring names the expected outcome. All
programs run once, four at a time, in one thread pool (parallel containment, and
other runs' judges within reach of every program); the per-program tests check the
recorded results, a canary in a root-owned 0700 directory outside the sandbox,
leftover processes and files, and the runner.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from qeval.sandbox import _UID_BASE, JudgeJob, SandboxLimits, run_judged, run_python
from qeval.scorers import get_scorer

HOSTILE = Path(__file__).parent / "hostile"
PROGRAMS = sorted(HOSTILE.glob("*.py"))
EXP = {"entry_point": "solve", "tests": "assert solve(1) == 2\nassert solve(2) == 3\ncheck(solve)",
       "setup": "def check(candidate):\n    assert all(map(lambda x: candidate(x) == x + 1, [3, 4]))\n"}
MARKER = f"qeval-hostile-{os.getpid()}"
CANARY_DIR = Path(f"/tmp/{MARKER}-canary")
CANARY = CANARY_DIR / "canary.txt"
SECRET = "AKIAqeval-hostile-secret-not-for-children"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the containment measured here (own uid per run, network namespace) needs Linux and root",
)


def expected(path: Path) -> set[str]:
    m = re.search(r"^Expected outcome: (.+)$", path.read_text(), re.MULTILINE)
    assert m, f"{path.name}: docstring lacks 'Expected outcome:'"
    return set(m.group(1).strip().split("|"))


def _canary_state() -> tuple[str, int, int, int]:
    st = CANARY.stat()
    return hashlib.sha256(CANARY.read_bytes()).hexdigest(), st.st_uid, st.st_mode, CANARY_DIR.stat().st_mode


def _procs_with(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd[:120]}")
    return found


def _sandbox_uid_procs() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid >= _UID_BASE:
                out.append(pid)
        except OSError:
            pass
    return out


def _sandbox_uid_files() -> list[str]:
    out = []
    for base in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            out += [e.path for e in os.scandir(base) if e.stat(follow_symlinks=False).st_uid >= _UID_BASE]
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def corpus() -> Any:
    CANARY_DIR.mkdir(mode=0o700)
    CANARY.write_text("canary: must not change\n")
    CANARY.chmod(0o600)
    before = _canary_state()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.01)
    port = listener.getsockname()[1]
    old_env = {k: os.environ.get(k) for k in ("AWS_SECRET_ACCESS_KEY", "HF_TOKEN")}
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET
    os.environ["HF_TOKEN"] = SECRET
    scorer = get_scorer("code_exec", {"timeout_s": 2, "memory_mb": 256})

    def one(path: Path) -> dict[str, Any]:
        src = path.read_text().replace("__MARKER__", MARKER).replace("__CANARY__", str(CANARY))
        src = src.replace("__PORT__", str(port))
        start = time.perf_counter()
        score = scorer.score(src, EXP)
        return {"score": score, "wall_s": time.perf_counter() - start}

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip([p.stem for p in PROGRAMS], pool.map(one, PROGRAMS)))
        total = time.perf_counter() - start
        accepted = 0
        try:
            while True:
                listener.accept()[0].close()
                accepted += 1
        except OSError:
            pass
        after = _canary_state() if CANARY.exists() else None
        yield {"results": results, "before": before, "after": after, "accepted": accepted, "total_s": total}
    finally:
        listener.close()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for p in (CANARY, CANARY_DIR):
            try:
                p.unlink() if p.is_file() else p.rmdir()
            except OSError:
                pass


def test_corpus_is_big_enough_and_documented() -> None:
    assert len(PROGRAMS) >= 25
    for path in PROGRAMS:
        outcomes = expected(path)
        assert outcomes <= {"passed", "failed", "timeout", "crashed", "resource_limit", "sandbox_error"}
        assert "passed" not in outcomes


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_hostile_program_is_contained(corpus: Any, path: Path) -> None:
    r = corpus["results"][path.stem]
    score = r["score"]
    assert not score.passed, f"{path.stem} was scored passed: {score.details}"
    assert score.details["outcome"] in expected(path), (path.stem, score.details["outcome"], score.reason)
    assert score.details["network"] == "isolated"
    assert r["wall_s"] < 20  # wall timeout 2 s plus cleanup, even four at a time on a busy machine
    assert corpus["after"] == corpus["before"], "the canary outside the sandbox changed"


def test_host_is_unaffected_after_the_corpus(corpus: Any) -> None:
    assert corpus["after"] == corpus["before"]
    assert corpus["accepted"] == 0, "a sandboxed program reached a socket on the host's loopback"
    assert not _procs_with(MARKER), "a process started by a hostile program is still running"
    assert not _sandbox_uid_procs(), "a process of a sandbox uid is still running"
    assert not _sandbox_uid_files(), "a sandbox uid left files in /tmp, /var/tmp or /dev/shm"
    assert not any(Path(p).exists() for p in (f"/root/{MARKER}", f"/etc/{MARKER}"))
    # the runner still works: a correct solution passes, a wrong one fails
    scorer = get_scorer("code_exec", {"timeout_s": 2})
    assert scorer.score("def solve(x):\n    return x + 1", EXP).passed
    assert not scorer.score("def solve(x):\n    return x", EXP).passed


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    r = run_python("import os\nprint(sorted(os.environ))\nprint(os.getuid())", SandboxLimits(wall_s=5))
    assert r.status == "ok" and SECRET not in r.stdout and "AWS_SECRET_ACCESS_KEY" not in r.stdout
    names, uid = r.stdout.splitlines()
    assert eval(names) == ["HOME", "LANG", "PATH", "PYTHONHASHSEED", "TMPDIR"]
    assert int(uid) >= _UID_BASE and r.isolation["network"] == "isolated"


def test_judge_and_solution_are_separate_isolated_processes() -> None:
    # The tests below run in the judge; uid() and fds() run in the solution's process.
    solution = ("import os\ndef uid():\n    return os.getuid()\n"
                "def fds():\n    return sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
                "def ppid():\n    return os.getppid()\n")
    job = JudgeJob("uid", (
        "import os, socket\nassert os.getuid() >= 2_000_000 and uid() >= 2_000_000 and uid() != os.getuid()",
        "assert socket.if_nameindex() == [(1, 'lo')]",  # the judge has its own network namespace too
        "assert len(fds()) == 5",  # stdin, stdout, stderr, its socket to the judge, the listing itself
        "assert ppid() != os.getpid()",  # the harness starts both: neither is the other's parent
    ))
    run = run_judged(solution, job, SandboxLimits(wall_s=10))
    assert run.record == {"stage": "tests", "results": [None] * 4}, run
    assert run.solution.status == run.judge.status == "ok"
    iso = run.solution.isolation
    assert iso["uid"] != iso["judge_uid"] and min(iso["uid"], iso["judge_uid"]) >= _UID_BASE
    assert iso["network"] == "isolated"
