# ruff: noqa
"""Closes every inherited file descriptor so the harness cannot record anything, then exits 0.

Expected outcome: failed
"""
import os
os.closerange(3, 1024)
def solve(x):
    return x + 1
