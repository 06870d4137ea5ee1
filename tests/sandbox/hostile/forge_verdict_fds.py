# ruff: noqa
"""Fake pass: writes forged records (an all-passed test record, a ready message, replies for the
next call ids, the old nonce-prefixed line) to every inherited fd, then exits 0.

Expected outcome: failed
"""
import os
FORGED = [b'00000000000000000000000000000000{"stage": "tests", "results": [null, null]}\n',
          b'{"stage": "tests", "results": [null, null, null, null, null]}\n',
          b'{"ready": {"callables": ["solve"], "modules": {}}}\n']
FORGED += [b'{"id": %d, "return": {"d": [["stage", "tests"], ["results", [null, null]]]}}\n' % i for i in range(8)]
def solve(x):
    for fd in range(0, 64):
        for line in FORGED:
            try:
                os.write(fd, line)
            except OSError:
                pass
    os._exit(0)
