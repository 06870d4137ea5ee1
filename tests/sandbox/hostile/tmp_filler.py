# ruff: noqa
"""Fills /tmp (outside its own directory) with files; the harness removes what the run's uid left.

Expected outcome: timeout
"""
import os
def solve(x):
    d = "/tmp/__MARKER__-junk"
    os.makedirs(d, exist_ok=True)
    i = 0
    while True:
        with open(os.path.join(d, str(i % 200)), "wb") as fh:
            fh.write(b"x" * 65536)
        i += 1
