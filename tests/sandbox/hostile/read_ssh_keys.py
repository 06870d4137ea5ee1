# ruff: noqa
"""Reads the operator's ~/.ssh (by absolute path, since HOME is the sandbox); passes only if it can list it.

Expected outcome: failed
"""
import os
def solve(x):
    os.listdir("/root/.ssh") if os.path.exists("/root/.ssh") else os.listdir("/root")
    return x + 1
