# ruff: noqa
"""Checks whether it may signal the harness (signal 0, a harmless permission probe); passes only if it may.

Expected outcome: failed
"""
import os
def solve(x):
    os.kill(os.getppid(), 0)
    return x + 1
