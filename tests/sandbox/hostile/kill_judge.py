# ruff: noqa
"""Finds the judge processes (its own and other runs') through /proc and tries to stop, kill or
signal them; passes only if it may signal any of them.

Expected outcome: failed
"""
import os, signal
def judges():  # the judge's command line is the loader that reads its job (`_read_all`)
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and b"_read_all" in cmdline(p)]
def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""
def solve(x):
    reached = False
    for pid in judges():
        for sig in (signal.SIGSTOP, signal.SIGKILL, 0):
            try:
                os.kill(pid, sig)
                reached = True
            except OSError:
                pass
    return x + 1 if reached else x
