# ruff: noqa
"""Ignores SIGTERM/SIGINT/SIGHUP/SIGXCPU and spins, hoping to survive the limits.

Expected outcome: timeout
"""
import signal
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
    signal.signal(s, signal.SIG_IGN)
def solve(x):
    while True:
        pass
