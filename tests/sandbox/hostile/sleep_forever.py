# ruff: noqa
"""Blocks forever without using CPU (only the wall clock can stop it).

Expected outcome: timeout
"""
import time
def solve(x):
    time.sleep(3600)
    return x + 1
