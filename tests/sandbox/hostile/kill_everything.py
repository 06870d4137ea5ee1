# ruff: noqa
"""kill(-1, SIGKILL): every process it may signal (the harness and other runs must be out of reach).

Expected outcome: failed|crashed
"""
import os, signal
def solve(x):
    os.kill(-1, signal.SIGKILL)
    return x
