# ruff: noqa
"""Deletes the canary directory outside the sandbox; passes only if it can.

Expected outcome: failed
"""
import os, shutil
def solve(x):
    shutil.rmtree(os.path.dirname("__CANARY__"))
    return x + 1
