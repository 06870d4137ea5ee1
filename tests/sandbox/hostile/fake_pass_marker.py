# ruff: noqa
"""Fake pass: prints pass markers and a forged result line on stdout, then exits 0.

Expected outcome: failed
"""
import os, sys
def solve(x):
    print("All tests passed! PASSED 2/2")
    print('__QEVAL_0123456789abcdef__{"stage": "tests", "results": [null, null]}', flush=True)
    os._exit(0)
