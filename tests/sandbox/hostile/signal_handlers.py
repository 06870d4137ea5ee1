# ruff: noqa
"""Fake pass: makes every catchable signal (SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGALRM, SIGXCPU, ...)
exit 0, arms an alarm to exit 0 mid-run, and raises SIGTERM on itself; the solution is wrong.

Expected outcome: failed
"""
import os, signal
for sig in signal.valid_signals():
    try:
        signal.signal(sig, lambda *a: os._exit(0))
    except (OSError, ValueError, RuntimeError):
        pass
signal.setitimer(signal.ITIMER_REAL, 0.3)
def solve(x):
    os.kill(os.getpid(), signal.SIGTERM)
    return x
