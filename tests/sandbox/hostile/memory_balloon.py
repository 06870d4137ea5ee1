# ruff: noqa
"""Allocates memory until something gives.

Expected outcome: resource_limit
"""
def solve(x):
    hoard = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))
