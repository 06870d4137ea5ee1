# ruff: noqa
"""Infinite CPU loop inside the solution.

Expected outcome: timeout
"""
def solve(x):
    while True:
        pass
