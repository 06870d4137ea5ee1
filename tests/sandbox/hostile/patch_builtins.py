# ruff: noqa
"""Fake pass: replaces builtins exec/compile/AssertionError so the tests would do nothing.

Expected outcome: failed
"""
import builtins
builtins.exec = lambda *a, **k: None
builtins.compile = lambda *a, **k: None
builtins.AssertionError = type("AssertionError", (Exception,), {})
def solve(x):
    return x
