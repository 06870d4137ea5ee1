# ruff: noqa
"""Overwrites a canary file outside the sandbox (root-owned 0700 directory); passes only if it can.

Expected outcome: failed
"""
def solve(x):
    with open("__CANARY__", "w") as fh:
        fh.write("pwned")
    return x + 1
