# ruff: noqa
"""Fake pass: raises SystemExit(0) inside the solution.

Expected outcome: failed
"""
import sys
def solve(x):
    sys.exit(0)
