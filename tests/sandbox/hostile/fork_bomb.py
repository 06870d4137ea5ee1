# ruff: noqa
"""Fork bomb: every process forks forever.

Expected outcome: timeout|resource_limit
"""
import os
def solve(x):
    while True:
        try:
            os.fork()
        except OSError:
            pass
