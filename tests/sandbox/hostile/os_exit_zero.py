# ruff: noqa
"""Fake pass: exits 0 with os._exit before the tests are recorded.

Expected outcome: failed
"""
import os
def solve(x):
    os._exit(0)
