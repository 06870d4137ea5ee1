# ruff: noqa
"""Writes one ever-growing file in its working directory.

Expected outcome: resource_limit
"""
def solve(x):
    with open("fill.bin", "wb") as fh:
        while True:
            fh.write(b"x" * (1 << 20))
            fh.flush()
