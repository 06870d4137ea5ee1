# ruff: noqa
"""Spawns sleeping children until the process limit (all must be gone afterwards).

Expected outcome: resource_limit|timeout
"""
import subprocess
def solve(x):
    kids = []
    while True:
        kids.append(subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL))
