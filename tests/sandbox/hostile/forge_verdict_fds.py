# ruff: noqa
"""Fake pass: writes forged records (guessed nonce) to every inherited fd, then exits 0.

Expected outcome: failed
"""
import os
def solve(x):
    for fd in range(0, 64):
        try:
            os.write(fd, b'00000000000000000000000000000000{"stage": "tests", "results": [null, null]}\n')
        except OSError:
            pass
    os._exit(0)
