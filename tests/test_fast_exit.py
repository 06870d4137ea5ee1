"""The CLI ends its process without the interpreter's teardown, and loses nothing doing so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from qeval.fast_exit import exit_code


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)


def test_exit_handlers_run_and_buffered_output_is_flushed(tmp_path):
    done = _run("""
        import atexit, sys
        from qeval.fast_exit import exit_now
        atexit.register(lambda: open("handler-ran", "w").write("yes"))
        sys.stdout.write("x" * 200_000)  # more than any buffer holds at once
        sys.stderr.write("last words")
        exit_now(3)
    """, tmp_path)
    assert done.returncode == 3
    assert done.stdout == "x" * 200_000 and done.stderr.endswith("last words")
    assert (tmp_path / "handler-ran").read_text() == "yes"


def test_a_thread_still_working_gets_the_normal_exit(tmp_path):
    done = _run("""
        import threading, time
        from qeval.fast_exit import exit_now
        def work():
            time.sleep(0.5)
            open("thread-finished", "w").write("yes")
        threading.Thread(target=work).start()
        exit_now(4)
    """, tmp_path)
    assert done.returncode == 4
    assert (tmp_path / "thread-finished").read_text() == "yes"


@pytest.mark.parametrize(("code", "status", "printed"), [(None, 0, ""), (0, 0, ""), (2, 2, ""), ("bad input", 1, "bad input")])
def test_exit_code_is_what_sys_exit_would_give(code, status, printed, capsys):
    assert exit_code(SystemExit(code)) == status
    assert capsys.readouterr().err.strip() == printed


def test_the_cli_keeps_its_exit_status_and_its_whole_output(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "qeval.cli", "sweep", "--model", "no-such-model", "--precisions", "fp32",
                          "--suites", "suites/arithmetic"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "Model 'no-such-model' not found" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "qeval.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "sweep" in ok.stdout
