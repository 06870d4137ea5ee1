from __future__ import annotations

import time

from qeval.sandbox import SandboxLimits, run_python

FAST = SandboxLimits(wall_s=2.0, cpu_s=2)


def test_ok_and_output() -> None:
    r = run_python("print('hi')", FAST)
    assert r.status == "ok" and r.returncode == 0 and r.stdout.strip() == "hi"


def test_error_exit() -> None:
    r = run_python("raise ValueError('boom')", FAST)
    assert r.status == "error" and "ValueError: boom" in r.stderr


def test_infinite_loop_is_killed() -> None:
    start = time.perf_counter()
    r = run_python("while True:\n    pass", FAST)
    # the wall clock or the CPU-seconds limit (both 2 s) stops it, whichever fires first
    assert r.status in ("timeout", "resource_limit") and time.perf_counter() - start < 6


def test_sleeping_child_processes_are_killed() -> None:
    code = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\nimport time\ntime.sleep(60)"
    r = run_python(code, SandboxLimits(wall_s=1.0))
    assert r.status == "timeout"


def test_huge_allocation_fails() -> None:
    r = run_python("x = bytearray(4 * 1024 ** 3)", FAST)
    assert r.status == "error" and "MemoryError" in r.stderr


def test_fork_bomb_is_contained() -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    start = time.perf_counter()
    r = run_python(code, SandboxLimits(wall_s=1.0, cpu_s=1, processes=16))
    assert r.status in ("timeout", "error") and time.perf_counter() - start < 10


def test_output_is_capped() -> None:
    r = run_python("import sys\nsys.stdout.write('x' * 200000)", SandboxLimits(wall_s=2.0, output_bytes=1000))
    assert len(r.stdout) < 1100 and r.stdout.endswith("[... output truncated]")


def test_runs_in_isolated_temp_dir() -> None:
    r = run_python("import os, sys\nprint(os.getcwd())\nprint(sorted(os.environ))", FAST)
    cwd, env = r.stdout.splitlines()[:2]
    assert "qeval-sandbox-" in cwd and "PYTHONPATH" not in env
