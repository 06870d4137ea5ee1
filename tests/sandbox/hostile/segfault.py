# ruff: noqa
"""Crashes the interpreter with a segmentation fault.

Expected outcome: crashed
"""
import ctypes
def solve(x):
    ctypes.string_at(0)
