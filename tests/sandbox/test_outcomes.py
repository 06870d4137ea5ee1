"""Sandbox statuses and the code_exec verdict protocol (no root needed)."""

from __future__ import annotations

import subprocess

import pytest

from qeval.sandbox import SandboxLimits, run_python
from qeval.scorers import get_scorer

EXP = {"entry_point": "solve", "tests": "assert solve(1) == 2"}


@pytest.fixture(scope="module")
def scorer():
    return get_scorer("code_exec", {"timeout_s": 3})


def test_signal_is_crashed() -> None:
    r = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", SandboxLimits(wall_s=5))
    assert r.status == "crashed" and r.signal == 11


def test_cpu_limit_is_resource_limit() -> None:
    r = run_python("while True:\n    pass", SandboxLimits(wall_s=30, cpu_s=1))
    assert r.status == "resource_limit" and r.wall_s < 25


def test_failure_to_start_is_sandbox_error(monkeypatch: pytest.MonkeyPatch, scorer) -> None:
    def broken(*a, **k):
        raise OSError("no fork for you")

    monkeypatch.setattr(subprocess, "Popen", broken)
    r = run_python("print(1)", SandboxLimits(wall_s=5))
    assert r.status == "sandbox_error" and "no fork for you" in r.stderr
    sc = scorer.score("def solve(x):\n    return x + 1", EXP)
    assert not sc.passed and sc.details["outcome"] == "sandbox_error"


def test_every_outcome_is_recorded(scorer) -> None:
    cases = {
        "def solve(x):\n    return x + 1": "passed",
        "def solve(x):\n    return x": "failed",
        "def solve(x):\n    while True:\n        pass": "timeout",
        "import os, signal\ndef solve(x):\n    os.kill(os.getpid(), signal.SIGKILL)": "crashed",
        "def solve(x):\n    return bytearray(8 * 1024 ** 3)": "resource_limit",
        "def solve(x) oops": "failed",
    }
    for code, outcome in cases.items():
        sc = scorer.score(code, EXP)
        assert sc.details["outcome"] == outcome, (code, sc.details["outcome"], sc.reason)
        assert sc.passed == (outcome == "passed")


# Completions that tried to forge a pass against the earlier in-process runner; the last three
# (reaching the runner's report function and results through frames, the heap and closures) did forge one.
FRAME_WALK = """\
import os, sys
def solve(x):
    f = sys._getframe()
    while f is not None:
        report = f.f_locals.get("report")
        if callable(report):
            report({"stage": "tests", "results": [None]})
            os._exit(0)
        f = f.f_back
    return x
"""
GC_RESULTS = """\
import gc
def solve(x):
    for o in gc.get_objects():
        if isinstance(o, list) and o and all(v is None or isinstance(v, str) for v in o):
            o[:] = [None] * len(o)
    return x
"""
CLOSURES = """\
import gc, os
def solve(x):
    for fn in [o for o in gc.get_objects() if type(o).__name__ == "function"]:
        names = fn.__code__.co_freevars
        cells = dict(zip(names, [c.cell_contents for c in fn.__closure__ or ()]))
        if "_nonce" in cells and "_wfd" in cells:
            os.write(cells["_wfd"], (cells["_nonce"] + '{"stage": "tests", "results": [null]}\\n').encode())
            os._exit(0)
    return x
"""


@pytest.mark.parametrize("trick", [
    "import os\ndef solve(x):\n    os._exit(0)",
    "import os\ndef solve(x):\n    print('__QEVAL_00__{\"stage\": \"tests\", \"results\": [null]}')\n    os._exit(0)",
    "import builtins\nbuiltins.exec = lambda *a, **k: None\ndef solve(x):\n    return x",
    "import atexit, os\natexit.register(lambda: os._exit(0))\ndef solve(x):\n    return x",
    "import os\nos.closerange(3, 1024)\ndef solve(x):\n    return x + 1",
    "class A:\n    def __eq__(self, o):\n        return True\ndef solve(x):\n    return A()",
    "class A(int):\n    def __eq__(self, o):\n        return True\ndef solve(x):\n    return A(0)",
    "def solve(x):\n    raise StopIteration",
    FRAME_WALK, GC_RESULTS, CLOSURES,
], ids=["os_exit", "fake_marker", "patch_exec", "atexit", "close_fds", "eq_anything", "eq_int_subclass",
        "stop_iteration", "frame_walk", "gc_results", "closures"])
def test_fake_passes_are_not_passed(scorer, trick: str) -> None:
    exp = {**EXP, "setup": "def check(candidate):\n    assert all(map(lambda x: candidate(x) == x + 1, [2]))\n",
           "tests": EXP["tests"] + "\ncheck(solve)"}
    sc = scorer.score(trick, exp)
    assert not sc.passed and sc.details["outcome"] == "failed", sc.reason
