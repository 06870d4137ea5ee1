# ruff: noqa
"""Reads the harness's environment through /proc/<ppid>/environ; passes only if it sees the secret.

Expected outcome: failed
"""
import os
def solve(x):
    with open(f"/proc/{os.getppid()}/environ", "rb") as fh:
        return x + 1 if b"AWS_SECRET_ACCESS_KEY" in fh.read() else None
