# ruff: noqa
"""Floods stdout and stderr.

Expected outcome: resource_limit|timeout
"""
import sys
def solve(x):
    while True:
        sys.stdout.write("y" * 65536)
        sys.stderr.write("z" * 65536)
