# ruff: noqa
"""Fake pass: an atexit hook that exits 0 whatever happened, and a wrong solution.

Expected outcome: failed
"""
import atexit, os
atexit.register(lambda: os._exit(0))
def solve(x):
    return x
